"""The head phase: the backbone frozen, the dropout + dense head learns from cached pooled features.

Cached features cost milliseconds a step, so the head gets a whole step budget (`head_steps`) under a
cosine decay and can converge. Distortions do not apply here (they would defeat the cache); they apply
in the fine-tune phase, which trains through the images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector.model.network import feature_extractor
from detector.model.predict import predict_batches
from detector.training.balance import balanced
from detector.training.bottleneck import BottleneckCache, backbone_key, default_cache_dir, features_for
from detector.training.checkpoint import EpochControl, callbacks

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from detector.training.config import TrainConfig
    from detector.training.inputs import PhaseData
    from detector.training.run import TrainRun

#: The head is judged on validation (and checkpointed) every this many optimizer steps.
HEAD_EVAL_STEPS = 100
#: Features whose spread is below this are not scaled up (dead ReLU channels).
MIN_FEATURE_STD = 1e-3


@dataclass
class HeadOutcome:
    features_computed: int
    features_cached: int
    train_accuracy: float  # of the head at its best validation point, on the training features


def head_model(x_train: np.ndarray, n_classes: int, dropout: float) -> keras.Model:
    """features -> standardize (the training features' mean and spread, fixed) -> dropout -> logits.

    Pooled Inception features range over orders of magnitude per channel; standardizing them is what
    lets one learning rate and one weight decay suit every channel (the linear probe's recipe). The
    standardization is folded into the dense layer afterwards (`fold_standardization`), so the
    classifier keeps its plain linear head and its exact closed-form CAM.
    """
    import keras

    mean = x_train.mean(axis=0)
    std = np.maximum(x_train.std(axis=0), MIN_FEATURE_STD)
    f = keras.Input(shape=(x_train.shape[1],), name="features")
    x = keras.layers.Normalization(mean=mean, variance=std**2, name="standardize")(f)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(n_classes, name="logits")(x)
    return keras.Model(f, keras.layers.Softmax(name="probs")(logits), name="head")


def fold_standardization(head: keras.Model) -> list[np.ndarray]:
    """The dense weights that give the same logits on raw features: W/std and b - (mean/std) @ W."""
    norm = head.get_layer("standardize")
    mean = np.asarray(norm.mean, np.float64).reshape(-1)
    std = np.sqrt(np.asarray(norm.variance, np.float64).reshape(-1))
    kernel, bias = (np.asarray(w, np.float64) for w in head.get_layer("logits").get_weights())
    folded = kernel / std[:, None]
    return [folded.astype(np.float32), (bias - (mean / std) @ kernel).astype(np.float32)]


def head_optimizer(cfg: TrainConfig) -> keras.optimizers.Optimizer:
    """AdamW with a cosine decay over the whole step budget: cached epochs cost milliseconds, so the
    head can afford to converge (30 epochs of ~16 steps had left the loss still falling)."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=cfg.head_steps, alpha=0.01)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay)


def head_phase(run: TrainRun, data: PhaseData) -> HeadOutcome:
    """Train the head for `head_steps` AdamW steps (judged every HEAD_EVAL_STEPS), then put its best
    weights, standardization folded in, into the classifier's dense layer."""
    cfg, state = run.cfg, run.state
    x_train, x_val, computed, cached = _bottlenecks(run, data)
    head = _head_to_train(run, x_train)
    stream, samples = _feature_stream(cfg, x_train, data.y_train, len(run.ds.classes))
    rounds = math.ceil(cfg.head_steps / HEAD_EVAL_STEPS)
    run.log(f"head phase: {cfg.head_steps} steps (AdamW, cosine decay from {cfg.learning_rate:g}), {samples} samples")
    val_probs = lambda m: predict_batches(m, x_val, 256)  # noqa: E731
    control = EpochControl(run.files, state, val_probs, data.y_val, cfg.patience, run.deadline, run.log)
    if state.epoch < rounds and state.wait < cfg.patience:
        head.fit(
            stream,
            steps_per_epoch=min(HEAD_EVAL_STEPS, cfg.head_steps),
            epochs=rounds,
            initial_epoch=state.epoch,
            shuffle=False,  # the stream shuffles itself
            verbose=0,
            callbacks=callbacks(control, cfg.logdir, "head"),
        )
    if run.files.best.is_file():
        head.load_weights(run.files.best)
    run.classifier.get_layer("logits").set_weights(fold_standardization(head))
    accuracy = round(float(np.mean(np.argmax(predict_batches(head, x_train, 256), axis=1) == data.y_train)), 4)
    run.log(f"  head: training accuracy {accuracy:.3f} at the best validation point")
    return HeadOutcome(computed, cached, accuracy)


def _bottlenecks(run: TrainRun, data: PhaseData) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(train features, val features, how many were computed, how many read from the cache)."""
    cfg = run.cfg
    extractor = feature_extractor(run.classifier)
    cache = BottleneckCache(
        Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(),
        backbone_key(extractor, run.input_size, run.meta.cam_layer),
    )
    x_train, n1 = features_for(data.train, extractor, cache, cfg.batch_size)
    x_val, n2 = features_for(data.val, extractor, cache, cfg.batch_size)
    computed = n1 + n2
    cached = len(data.train) + len(data.val) - computed
    run.log(f"bottlenecks: {computed} computed, {cached} from cache ({cache.dir})")
    return x_train, x_val, computed, cached


def _head_to_train(run: TrainRun, x_train: np.ndarray) -> keras.Model:
    """The head as the last epoch left it (a resumed run), else a new one, compiled."""
    import keras

    if run.state.epoch > 0 and run.files.ckpt.is_file():
        return keras.models.load_model(run.files.ckpt, compile=True, safe_mode=True)
    head = head_model(x_train, len(run.ds.classes), run.meta.dropout)
    head.compile(optimizer=head_optimizer(run.cfg), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return head


def _feature_stream(
    cfg: TrainConfig, x_train: np.ndarray, y_train: np.ndarray, n_classes: int
) -> tuple[tf.data.Dataset, int]:
    """An endless, shuffled, balanced stream of (features, label, sample weight) batches; and its size."""
    import tensorflow as tf

    idx, weights = balanced(y_train, n_classes, cfg.balance, cfg.seed)
    w = np.array([weights[int(c)] for c in y_train[idx]], np.float32) if weights else np.ones(len(idx), np.float32)
    stream = (
        tf.data.Dataset.from_tensor_slices((x_train[idx], y_train[idx], w))
        .shuffle(len(idx), seed=cfg.seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(cfg.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    return stream, len(idx)
