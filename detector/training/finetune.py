"""The fine-tune phase: the top N Inception blocks (or all) train with the head, end to end on pixels,
at a lower learning rate, through the random distortions (crop/zoom, brightness, colour, flip).

`all` with `weights="none"` is training from scratch, the only way to a useful model where ImageNet
weights cannot be downloaded.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from detector.model.meta import BLOCKS
from detector.model.predict import predict_batches
from detector.training.balance import balanced
from detector.training.checkpoint import EpochControl, callbacks

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from detector.training.config import TrainConfig
    from detector.training.inputs import PhaseData
    from detector.training.run import TrainRun


def set_trainable_blocks(classifier: keras.Model, fine_tune: str, train_batchnorm: bool) -> int:
    """Unfreeze the top N blocks of the backbone (or all). Returns how many backbone layers train.

    BatchNorm layers of a pretrained backbone stay frozen (inference mode): re-estimating their
    statistics on a small logo dataset wrecks the ImageNet features (Keras transfer-learning guide).
    """
    import keras

    backbone = classifier.get_layer("backbone")
    backbone.trainable = True
    layers = backbone.layers
    last = _last_block(backbone)
    n = len(BLOCKS) if fine_tune == "all" else int(fine_tune)
    start = 0
    if n <= last:
        boundary = BLOCKS[last - n]
        start = [layer.name for layer in layers].index(boundary) + 1
    count = 0
    for i, layer in enumerate(layers):
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= start and (train_batchnorm or not is_bn)
        count += int(layer.trainable and bool(layer.weights))
    return count


def _last_block(backbone: keras.Model) -> int:
    names = {layer.name for layer in backbone.layers}
    return max(i for i, b in enumerate(BLOCKS) if b in names)


def augment(cfg: TrainConfig, size: int) -> Callable:
    """Random crop/zoom, brightness, colour and flip as TF ops inside tf.data (never cached, by nature)."""
    import tensorflow as tf

    crop, scale, bright = cfg.random_crop / 100, cfg.random_scale / 100, cfg.random_brightness / 100
    color = cfg.random_color / 100

    def fn(img: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        img = tf.cast(img, tf.float32)
        src = tf.cast(tf.shape(img)[0], tf.float32)
        frac = tf.random.uniform([], 1.0 - crop, 1.0) / tf.random.uniform([], 1.0, 1.0 + scale)
        side = tf.cast(tf.maximum(src * frac, 8.0), tf.int32)
        img = tf.image.random_crop(img, tf.stack([side, side, 3]))
        img = tf.image.resize(img, (size, size), antialias=True)
        if bright:
            img = img * tf.random.uniform([], 1.0 - bright, 1.0 + bright)
        if color:
            img = tf.image.random_saturation(img / 255.0, 1.0 - color, 1.0 + color)
            img = tf.image.random_hue(img, min(0.5, color / 10)) * 255.0
        if cfg.flip_left_right:
            img = tf.image.random_flip_left_right(img)
        return tf.clip_by_value(img, 0.0, 255.0), label

    return fn


def fine_tune_phase(run: TrainRun, data: PhaseData) -> None:
    """Unfreeze the blocks `fine_tune` names and train end to end for `fine_tune_epochs`.

    From scratch, BatchNorm trains too and the default learning rate is 1e-3 (1e-4 for pretrained
    weights, whose features a large step would wreck)."""
    cfg = run.cfg
    scratch = run.meta.weights_origin == "none"
    n = set_trainable_blocks(run.classifier, str(cfg.fine_tune), train_batchnorm=scratch)
    lr = cfg.fine_tune_lr or (1e-3 if scratch and cfg.fine_tune == "all" else 1e-4)
    run.log(f"fine-tune phase: {cfg.fine_tune} block(s), {n} backbone layers with weights train, lr {lr:g}")
    fit_images(run, data, cfg.fine_tune_epochs, lr, "fine_tune")


def fit_images(run: TrainRun, data: PhaseData, epochs: int, lr: float, phase: str) -> None:
    """End-to-end epochs on pixels (optionally distorted), with the same checkpoint/early-stop control;
    the best epoch's weights end up in the run's classifier."""
    import keras

    cfg, state, files = run.cfg, run.state, run.files
    model = run.classifier
    if state.epoch > 0 and files.ckpt.is_file():
        model = keras.models.load_model(files.ckpt, compile=True, safe_mode=True)
    else:
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stream, class_weight = _image_stream(cfg, data, int(model.output_shape[-1]), run.input_size)
    val_probs = lambda m: predict_batches(m, data.val_pixels, cfg.batch_size)  # noqa: E731
    control = EpochControl(files, state, val_probs, data.y_val, cfg.patience, run.deadline, run.log)
    if state.epoch < epochs and state.wait < cfg.patience:
        model.fit(
            stream,
            epochs=epochs,
            initial_epoch=state.epoch,
            class_weight=class_weight,
            shuffle=False,
            verbose=1 if sys.stdout.isatty() else 2,
            callbacks=callbacks(control, cfg.logdir, phase),
        )
    if files.best.is_file():
        model.load_weights(files.best)
    if model is not run.classifier:
        run.classifier.set_weights(model.get_weights())


def _image_stream(
    cfg: TrainConfig, data: PhaseData, n_classes: int, size: int
) -> tuple[tf.data.Dataset, dict[int, float] | None]:
    """Shuffled, balanced (label, pixels) batches, distorted to `size` px when the config distorts; and
    the class weights for Keras's `class_weight` (None unless balance is class-weight)."""
    import tensorflow as tf

    pixels = np.stack([d.pixels for d in data.train])
    idx, class_weight = balanced(data.y_train, n_classes, cfg.balance, cfg.seed)
    ds = tf.data.Dataset.from_tensor_slices((pixels[idx], data.y_train[idx])).shuffle(
        len(idx), seed=cfg.seed, reshuffle_each_iteration=True
    )
    if cfg.distort:
        ds = ds.map(augment(cfg, size), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE), class_weight
