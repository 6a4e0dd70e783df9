"""Transfer learning for the logo classifier, resumable at every epoch.

Two phases, as in the original retrain script and the Keras transfer-learning guide:
1. head: the backbone is frozen; the dropout + dense head learns from pooled features, read from the
   bottleneck cache (or, with distortions, from distorted images through the frozen backbone);
2. fine-tune (optional): the top N Inception blocks, or all of them, train with the head at a lower
   learning rate. `all` with `--weights none` is training from scratch, the only way to a useful model
   where ImageNet weights cannot be downloaded; its head phase is skipped, as features of a random
   backbone teach the head nothing.

Every epoch ends with the model, its optimizer state and the early-stopping state on disk (atomically),
so `--resume` after a SIGKILL repeats at most the epoch that was running.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detector.data.boxes import is_box_dataset
from detector.data.folders import Dataset, DecodedSample, decode_samples, fingerprint, scan_datasets
from detector.data.tilecut import tile_dataset_for
from detector.errors import DatasetError
from detector.evaluation.metrics import choose_thresholds, classification_report, positive_average_precision
from detector.images import resize_to
from detector.model.predict import predict_batches
from detector.model.store import BLOCKS, ModelMeta, feature_extractor, new_model, save_model_dir, write_json_atomic
from detector.training.bottleneck import BottleneckCache, backbone_key, default_cache_dir, features_for

if TYPE_CHECKING:
    import keras

BALANCE_MODES = ("class-weight", "upsample", "none")
RUN_DIR = ".train"
#: Input size and head block when not given, by whether the backbone is pretrained. Measured on the
#: FlickrLogos-27 dev photos with the pretrained stand-in (benchmarks/flickr27.py; README Results):
#: a linear head on mixed6 windows ranked brands best of mixed5/6/7, and 224 px keeps a 500x375 photo
#: near a second on 2 cores. From scratch, mixed2 at 128 px (13x13 maps) is what localizes (STACK-NOTES).
#: With pretrained weights the top two blocks under the head are then fine-tuned for 3 epochs with
#: distortions, BatchNorm frozen: on folds 0-1 of FlickrLogos-27 that lifted recall at 90% precision
#: (other brands as negatives) from about 0.12 (head only, all folds) to 0.35, box AP@0.5 0.05 -> 0.12.
RECIPES = {
    "pretrained": {
        "input_size": 224,
        "cam_layer": "mixed6",
        "fine_tune": "2",
        "fine_tune_epochs": 3,
        "distortions": {"random_crop": 10.0, "random_scale": 15.0, "random_brightness": 20.0, "random_color": 20.0},
    },
    "scratch": {"input_size": 128, "cam_layer": "mixed2", "fine_tune": None, "fine_tune_epochs": 10, "distortions": {}},
}
#: The head is judged on validation (and checkpointed) every this many optimizer steps.
HEAD_EVAL_STEPS = 100
#: Features whose spread is below this are not scaled up (dead ReLU channels).
MIN_FEATURE_STD = 1e-3


DISTORTIONS = ("random_crop", "random_scale", "random_brightness", "random_color")


@dataclass
class TrainConfig:
    data: str | list[str]  # class folders or box datasets; several are trained on as one
    out: str
    weights: str = "imagenet"
    input_size: int | None = None  # None: the recipe's (see RECIPES)
    cam_layer: str | None = None  # None: the recipe's
    dropout: float = 0.5
    negative_class: str = "no-logo"
    head_steps: int = 2000  # optimizer steps of the head phase (on cached features: milliseconds each)
    learning_rate: float = 1e-3  # the head's peak learning rate, decayed to 1% of it over head_steps (cosine)
    weight_decay: float = 1e-4  # AdamW's decoupled weight decay for the head
    batch_size: int = 32
    balance: str = "class-weight"
    fine_tune: str | None = "auto"  # "auto" (the recipe's), None or "none", "N" (top N blocks) or "all"
    fine_tune_epochs: int | None = None  # None: the recipe's
    fine_tune_lr: float | None = None
    patience: int = 5  # validations without improvement (every HEAD_EVAL_STEPS head steps; every epoch later)
    # Distortions of the fine-tune phase; None: the recipe's when it fine-tunes, else none.
    random_crop: float | None = None  # percent of the side that may be cut away
    random_scale: float | None = None  # percent of extra zoom
    random_brightness: float | None = None  # percent up or down
    random_color: float | None = None  # percent of saturation change (and a tenth of it as a hue shift)
    flip_left_right: bool = False
    logdir: str | None = None
    resume: bool = False
    seed: int = 0
    cache_dir: str | None = None
    val_percent: float = 10.0
    test_percent: float = 10.0
    max_minutes: float | None = None
    bn_momentum: float | None = None
    init: str | None = None  # a model directory to start from (e.g. after adding mined hard negatives)

    @property
    def distort(self) -> bool:
        return bool(
            self.random_crop or self.random_scale or self.random_brightness or self.random_color or self.flip_left_right
        )

    def validate(self) -> None:
        if self.head_steps < 1:
            raise DatasetError("--head-steps must be at least 1")
        if self.balance not in BALANCE_MODES:
            raise DatasetError(f"--balance must be one of {', '.join(BALANCE_MODES)}")
        if self.fine_tune not in (None, "none", "auto", "all"):
            if not str(self.fine_tune).isdigit() or int(self.fine_tune) < 1:
                raise DatasetError("--fine-tune takes auto, none, a number of top Inception blocks (1..11) or 'all'")


def with_recipe_defaults(cfg: TrainConfig) -> TrainConfig:
    """Fill what the user left open (input size, head block, fine-tuning and its distortions) from the
    recipe for these weights."""
    from detector.model.store import read_meta, resolve_weights

    if cfg.init:  # continuing a model: its own size, block and kind of weights, not --weights'
        start = read_meta(cfg.init)
        scratch, size, layer = start.weights_origin == "none", start.input_size, start.cam_layer
    else:
        scratch, size, layer = resolve_weights(cfg.weights) is None, cfg.input_size, cfg.cam_layer
    recipe = RECIPES["scratch" if scratch else "pretrained"]
    fine_tune = recipe["fine_tune"] if cfg.fine_tune == "auto" else (None if cfg.fine_tune == "none" else cfg.fine_tune)
    distort = recipe["distortions"] if (cfg.fine_tune == "auto" and fine_tune) else {}
    return replace(
        cfg,
        input_size=size or recipe["input_size"],
        cam_layer=layer or recipe["cam_layer"],
        fine_tune=fine_tune,
        fine_tune_epochs=cfg.fine_tune_epochs or recipe["fine_tune_epochs"],
        **{k: v if (v := getattr(cfg, k)) is not None else distort.get(k, 0.0) for k in DISTORTIONS},
    )


@dataclass
class TrainResult:
    model_dir: Path
    meta: ModelMeta
    phases: list[dict[str, Any]]
    skipped: list[tuple[str, str]]
    features_computed: int
    features_cached: int


@dataclass
class _State:
    """What survives a kill: where the run is and how early stopping stood."""

    phase: str
    epoch: int = 0
    best: float = -math.inf
    best_loss: float = math.inf
    wait: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    finished: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


class _RunDir:
    def __init__(self, out: Path) -> None:
        self.dir = out / RUN_DIR
        self.state_path = self.dir / "state.json"
        self.initial = self.dir / "initial.keras"
        self.ckpt = self.dir / "ckpt.keras"
        self.best = self.dir / "best.weights.h5"

    def load_state(self) -> _State | None:
        if not self.state_path.is_file():
            return None
        return _State(**json.loads(self.state_path.read_text()))

    def save_state(self, state: _State) -> None:
        write_json_atomic(self.state_path, asdict(state))

    def save_model(self, model: keras.Model, path: Path) -> None:
        tmp = path.with_name(path.name.replace(".keras", ".tmp.keras").replace(".weights.h5", ".tmp.weights.h5"))
        if path.suffix == ".keras":
            model.save(tmp)
        else:
            model.save_weights(tmp)
        tmp.replace(path)


def _is_tty() -> bool:
    return sys.stdout.isatty()


def _class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    present = counts > 0
    w = np.where(present, len(labels) / (present.sum() * np.maximum(counts, 1)), 0.0)
    return {i: float(w[i]) for i in range(n_classes)}


def _upsample(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices with every class repeated up to the largest class's count (the original project's fix)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    target = counts.max()
    idx = []
    for c in np.flatnonzero(counts):
        members = np.flatnonzero(labels == c)
        extra = rng.choice(members, target - len(members), replace=True) if target > len(members) else []
        idx.extend(members.tolist() + list(extra))
    return np.asarray(sorted(idx))


def _validation_scores(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean AP of the logo classes, cross-entropy); the negative class is index 0 (Dataset puts it first)."""
    if not len(y):
        return float("nan"), float("nan")
    names = [str(i) for i in range(probs.shape[1])]
    ap = positive_average_precision(probs, y, names, names[0])
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))))
    return ap, loss


def _head_model(x_train: np.ndarray, n_classes: int, dropout: float) -> keras.Model:
    """features -> standardize (the training features' mean and spread, fixed) -> dropout -> logits.

    Pooled Inception features range over orders of magnitude per channel; standardizing them is what
    lets one learning rate and one weight decay suit every channel (the linear probe's recipe). The
    standardization is folded into the dense layer afterwards (`_fold_standardization`), so the
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


def _fold_standardization(head: keras.Model) -> list[np.ndarray]:
    """The dense weights that give the same logits on raw features: W/std and b - (mean/std) @ W."""
    norm = head.get_layer("standardize")
    mean = np.asarray(norm.mean, np.float64).reshape(-1)
    std = np.sqrt(np.asarray(norm.variance, np.float64).reshape(-1))
    kernel, bias = (np.asarray(w, np.float64) for w in head.get_layer("logits").get_weights())
    folded = kernel / std[:, None]
    return [folded.astype(np.float32), (bias - (mean / std) @ kernel).astype(np.float32)]


def _head_optimizer(cfg: TrainConfig) -> keras.optimizers.Optimizer:
    """AdamW with a cosine decay over the whole step budget: cached epochs cost milliseconds, so the
    head can afford to converge (30 epochs of ~16 steps had left the loss still falling)."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=cfg.head_steps, alpha=0.01)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay)


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


def _augment(cfg: TrainConfig, size: int) -> Callable:
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


class _EpochControl:
    """Keras callback: validation AP, early stopping, best weights and a checkpoint every epoch."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # subclass keras.callbacks.Callback lazily
        import keras

        class EpochControl(keras.callbacks.Callback):
            def __init__(
                self,
                run: _RunDir,
                state: _State,
                val_probs: Callable[[keras.Model], np.ndarray],
                y_val: np.ndarray,
                patience: int,
                deadline: float | None,
                log: Callable[[str], None],
            ) -> None:
                super().__init__()
                self.run, self.state, self.val_probs, self.y_val = run, state, val_probs, y_val
                self.patience, self.deadline, self.log = patience, deadline, log

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                logs = logs if logs is not None else {}
                score, loss = _validation_scores(self.val_probs(self.model), self.y_val)
                if math.isnan(score):  # no validation positives: fall back to the training loss
                    score, loss = -float(logs.get("loss", 0.0)), float(logs.get("loss", 0.0))
                logs["val_ap"], logs["val_loss"] = score, loss
                st = self.state
                # AP first; on a tie (a clean validation set saturates at 1.0) the lower loss wins.
                if score > st.best + 1e-6 or (score >= st.best - 1e-6 and loss < st.best_loss - 1e-6):
                    st.best, st.best_loss, st.wait = score, loss, 0
                    self.run.save_model(self.model, self.run.best)
                else:
                    st.wait += 1
                st.epoch = epoch + 1
                st.history.append(
                    {
                        "epoch": epoch + 1,
                        **{k: round(float(v), 5) for k, v in logs.items()},
                    }
                )
                self.run.save_model(self.model, self.run.ckpt)
                self.run.save_state(st)
                if st.wait >= self.patience:
                    self.log(f"  early stop: validation AP/loss have not improved for {self.patience} epochs")
                    self.model.stop_training = True
                if self.deadline is not None and time.monotonic() > self.deadline:
                    self.log("  time budget (--max-minutes) reached: stopping after this epoch")
                    self.model.stop_training = True

        return EpochControl(*args, **kwargs)


def train(cfg: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    """Train a classifier on a class-folder dataset and write the model directory to cfg.out."""
    import keras

    cfg.validate()
    cfg = with_recipe_defaults(cfg)
    t_start = time.monotonic()
    deadline = t_start + cfg.max_minutes * 60 if cfg.max_minutes else None
    out = Path(cfg.out)
    run = _RunDir(out)
    roots = [_class_folders(cfg, src, log) for src in ([cfg.data] if isinstance(cfg.data, str) else cfg.data)]
    ds = scan_datasets(roots, cfg.negative_class, cfg.val_percent, cfg.test_percent)
    state = run.load_state() if cfg.resume else None
    if state is not None:
        log(f"resuming: phase {state.phase}, {state.epoch} epoch(s) done")
    elif run.dir.exists():
        log(f"note: discarding an unfinished run in {run.dir} (pass --resume to continue it instead)")
        shutil.rmtree(run.dir)
    run.dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)

    if state is None and cfg.init:
        classifier, meta = _init_from(cfg.init, ds)
        run.save_model(classifier, run.initial)
        state = _State(phase="fine_tune" if cfg.fine_tune else "head", config=asdict(cfg))
        run.save_state(state)
        log(f"starting from {cfg.init} ({meta.weights_origin})")
    elif state is None:
        classifier, meta = new_model(
            ds.classes, ds.negative_class, cfg.weights, cfg.input_size, cfg.cam_layer, cfg.dropout, cfg.bn_momentum
        )
        run.save_model(classifier, run.initial)
        skip_head = cfg.fine_tune == "all" and meta.weights_origin == "none"
        state = _State(phase="fine_tune" if skip_head else "head", config=asdict(cfg))
        run.save_state(state)
        if skip_head:
            log("no pretrained weights and --fine-tune all: training the whole network from scratch")
    else:
        classifier = keras.models.load_model(run.initial, compile=False, safe_mode=True)
        meta = _init_from(cfg.init, ds)[1] if cfg.init else _meta_from_config(ds, cfg, state)

    size = meta.input_size
    train_s, val_s = ds.in_split("train"), ds.in_split("val")
    log(f"dataset: {len(ds.samples)} images, classes {ds.classes}; train {len(train_s)}, val {len(val_s)}")
    src_size = int(round(size * 1.25)) if (cfg.random_crop or cfg.random_scale) else size
    train_d, bad_t = decode_samples(train_s, src_size, progress="decode train")
    val_d, bad_v = decode_samples(val_s, size, progress="decode val")
    skipped = ds.skipped + bad_t + bad_v
    for path, reason in bad_t + bad_v:
        log(f"  skipped {path}: {reason}")
    if not train_d:
        raise DatasetError(f"{cfg.data}: no readable training images")
    y_train = np.array([ds.label_index(d.sample.label) for d in train_d])
    y_val = np.array([ds.label_index(d.sample.label) for d in val_d])
    if len(np.unique(y_train)) < 2:
        raise DatasetError(f"{cfg.data}: the training split holds only one class; add images of each class")
    val_pixels = np.stack([d.pixels for d in val_d]) if val_d else np.zeros((0, size, size, 3), np.uint8)

    data = _PhaseData(train_d, y_train, val_d, y_val, val_pixels)
    computed = cached = 0
    if state.phase == "head":
        head_data = data if src_size == size else replace(data, train=[_resized(d, size) for d in train_d])
        computed, cached, accuracy = _head_phase(cfg, ds, classifier, meta, run, state, head_data, deadline, log)
        state.finished.append(
            {"phase": "head", "epochs": state.epoch, "best_val_ap": state.best, "train_accuracy": accuracy}
        )
        if cfg.fine_tune and (deadline is None or time.monotonic() < deadline):
            run.save_model(classifier, run.initial)
            state = _State(phase="fine_tune", finished=state.finished, config=state.config)
            run.save_state(state)
        else:
            state.phase = "done"
    if state.phase == "fine_tune":
        _fine_tune_phase(cfg, classifier, meta, run, state, data, deadline, log)
        state.finished.append({"phase": "fine_tune", "epochs": state.epoch, "best_val_ap": state.best})
        state.phase = "done"

    # Thresholds and validation figures on the final classifier, whole images as the user gives them.
    val_probs = predict_batches(classifier, val_pixels, cfg.batch_size)
    choice = choose_thresholds(val_probs, y_val, ds.classes, ds.negative_class) if len(y_val) else {}
    meta.thresholds = {c: float(ch.threshold) for c, ch in choice.items()}
    meta.validation = (
        classification_report(val_probs, y_val, ds.classes, ds.negative_class, meta.thresholds) if len(y_val) else {}
    )
    meta.validation["phases"] = state.finished
    meta.validation["train_seconds"] = round(time.monotonic() - t_start, 1)
    meta.data_fingerprint = fingerprint(train_d + val_d)
    save_model_dir(classifier, meta, out)
    shutil.rmtree(run.dir, ignore_errors=True)
    return TrainResult(out, meta, state.finished, skipped, computed, cached)


def _class_folders(cfg: TrainConfig, source: str, log: Callable[[str], None]) -> str:
    """A class-folder dataset as it is; a box dataset (scenes or real photos with boxes) as the tiles
    the scanner's own tiling cuts from it, cut once and cached."""
    if not is_box_dataset(source):
        return source
    cache_root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    tiles = tile_dataset_for(source, cfg.input_size, cache_root.parent / "tiles", cfg.negative_class)
    log(f"box dataset {source}: training on its tiles in {tiles}")
    return str(tiles)


def _resized(d: DecodedSample, size: int) -> DecodedSample:
    """The same sample at the classifier's input size (training images are decoded larger for crops)."""
    return replace(d, pixels=resize_to(d.pixels, size))


def _init_from(model_dir: str, ds: Dataset) -> tuple[keras.Model, ModelMeta]:
    """A trained model to continue from: same classes, its input size and CAM layer; thresholds redone."""
    from detector.model.store import load_model_dir, model_sha256

    classifier, old = load_model_dir(model_dir)
    if old.classes != ds.classes:
        raise DatasetError(f"--init {model_dir}: its classes {old.classes} differ from the data's {ds.classes}")
    meta = ModelMeta(
        classes=old.classes,
        negative_class=old.negative_class,
        input_size=old.input_size,
        cam_layer=old.cam_layer,
        weights_origin=f"init:{Path(model_dir).name}:sha256={model_sha256(model_dir)[:16]}",
        dropout=old.dropout,
        bn_momentum=old.bn_momentum,
    )
    return classifier, meta


def _meta_from_config(ds: Dataset, cfg: TrainConfig, state: _State) -> ModelMeta:
    from detector.model.store import weights_origin

    c = state.config
    origin = weights_origin(c["weights"])
    bn = c.get("bn_momentum") or (0.9 if origin == "none" else 0.99)
    return ModelMeta(
        classes=ds.classes,
        negative_class=ds.negative_class,
        input_size=c["input_size"],
        cam_layer=c["cam_layer"],
        weights_origin=origin,
        dropout=c["dropout"],
        bn_momentum=bn,
    )


def _callbacks(cfg: TrainConfig, phase: str, control: Any) -> list:
    import keras

    cbs = [control]
    if cfg.logdir:
        cbs.append(keras.callbacks.TensorBoard(log_dir=str(Path(cfg.logdir) / phase)))
    return cbs


@dataclass
class _PhaseData:
    """What a training phase reads: decoded train/val images, their labels, and the validation pixels."""

    train: list[DecodedSample]
    y_train: np.ndarray
    val: list[DecodedSample]
    y_val: np.ndarray
    val_pixels: np.ndarray


def _head_phase(
    cfg: TrainConfig,
    ds: Dataset,
    classifier: keras.Model,
    meta: ModelMeta,
    run: _RunDir,
    state: _State,
    data: _PhaseData,
    deadline: float | None,
    log: Callable[[str], None],
) -> tuple[int, int, float]:
    """The head alone, on cached pooled features, for `head_steps` AdamW steps under a cosine decay.

    Distortions do not apply here (they would defeat the cache); they apply in the fine-tune phase,
    which trains through the images. Returns (features computed, read from the cache, training accuracy).
    """
    import keras
    import tensorflow as tf

    n_classes = len(ds.classes)
    extractor = feature_extractor(classifier)
    cache = BottleneckCache(
        Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(),
        backbone_key(extractor, meta.input_size, meta.cam_layer),
    )
    x_train, n1 = features_for(data.train, extractor, cache, cfg.batch_size)
    x_val, n2 = features_for(data.val, extractor, cache, cfg.batch_size)
    computed = n1 + n2
    cached = len(data.train) + len(data.val) - computed
    log(f"bottlenecks: {computed} computed, {cached} from cache ({cache.dir})")

    if state.epoch > 0 and run.ckpt.is_file():
        head = keras.models.load_model(run.ckpt, compile=True, safe_mode=True)
    else:
        head = _head_model(x_train, n_classes, meta.dropout)
        head.compile(optimizer=_head_optimizer(cfg), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    y_train = data.y_train
    idx = _upsample(y_train, cfg.seed) if cfg.balance == "upsample" else np.arange(len(y_train))
    weights = _class_weights(y_train, n_classes) if cfg.balance == "class-weight" else None
    w = np.array([weights[int(c)] for c in y_train[idx]], np.float32) if weights else np.ones(len(idx), np.float32)
    stream = (
        tf.data.Dataset.from_tensor_slices((x_train[idx], y_train[idx], w))
        .shuffle(len(idx), seed=cfg.seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(cfg.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    rounds = math.ceil(cfg.head_steps / HEAD_EVAL_STEPS)
    log(f"head phase: {cfg.head_steps} steps (AdamW, cosine decay from {cfg.learning_rate:g}), {len(idx)} samples")
    control = _EpochControl(
        run, state, lambda m: predict_batches(m, x_val, 256), data.y_val, cfg.patience, deadline, log
    )
    if state.epoch < rounds and state.wait < cfg.patience:
        head.fit(
            stream,
            steps_per_epoch=min(HEAD_EVAL_STEPS, cfg.head_steps),
            epochs=rounds,
            initial_epoch=state.epoch,
            shuffle=False,  # the stream shuffles itself
            verbose=0,
            callbacks=_callbacks(cfg, "head", control),
        )
    if run.best.is_file():
        head.load_weights(run.best)
    classifier.get_layer("logits").set_weights(_fold_standardization(head))
    accuracy = round(float(np.mean(np.argmax(predict_batches(head, x_train, 256), axis=1) == y_train)), 4)
    log(f"  head: training accuracy {accuracy:.3f} at the best validation point")
    return computed, cached, accuracy


def _fine_tune_phase(
    cfg: TrainConfig,
    classifier: keras.Model,
    meta: ModelMeta,
    run: _RunDir,
    state: _State,
    data: _PhaseData,
    deadline: float | None,
    log: Callable[[str], None],
) -> None:
    scratch = meta.weights_origin == "none"
    n = set_trainable_blocks(classifier, str(cfg.fine_tune), train_batchnorm=scratch)
    lr = cfg.fine_tune_lr or (1e-3 if scratch and cfg.fine_tune == "all" else 1e-4)
    log(f"fine-tune phase: {cfg.fine_tune} block(s), {n} backbone layers with weights train, lr {lr:g}")
    _fit_images(cfg, classifier, run, state, data, cfg.fine_tune_epochs, lr, deadline, log, "fine_tune")


def _fit_images(
    cfg: TrainConfig,
    classifier: keras.Model,
    run: _RunDir,
    state: _State,
    data: _PhaseData,
    epochs: int,
    lr: float,
    deadline: float | None,
    log: Callable[[str], None],
    phase: str,
) -> None:
    """End-to-end epochs on pixels (optionally distorted), with the same checkpoint/early-stop control."""
    import keras
    import tensorflow as tf

    model = classifier
    if state.epoch > 0 and run.ckpt.is_file():
        model = keras.models.load_model(run.ckpt, compile=True, safe_mode=True)
    else:
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    n_classes = int(model.output_shape[-1])
    train_d, y_train, val_pixels, y_val = data.train, data.y_train, data.val_pixels, data.y_val
    pixels = np.stack([d.pixels for d in train_d])
    idx = _upsample(y_train, cfg.seed) if cfg.balance == "upsample" else np.arange(len(y_train))
    class_weight = _class_weights(y_train, n_classes) if cfg.balance == "class-weight" else None
    ds = tf.data.Dataset.from_tensor_slices((pixels[idx], y_train[idx])).shuffle(
        len(idx), seed=cfg.seed, reshuffle_each_iteration=True
    )
    if cfg.distort:
        ds = ds.map(_augment(cfg, cfg.input_size), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)
    val_probs = lambda m: predict_batches(m, val_pixels, cfg.batch_size)  # noqa: E731
    control = _EpochControl(run, state, val_probs, y_val, cfg.patience, deadline, log)
    if state.epoch < epochs and state.wait < cfg.patience:
        model.fit(
            ds,
            epochs=epochs,
            initial_epoch=state.epoch,
            class_weight=class_weight,
            shuffle=False,
            verbose=1 if _is_tty() else 2,
            callbacks=_callbacks(cfg, phase, control),
        )
    if run.best.is_file():
        model.load_weights(run.best)
    if model is not classifier:
        classifier.set_weights(model.get_weights())
