"""Transfer learning for the logo classifier, resumable at every epoch: the `train` entry point.

Two phases, as in the original retrain script and the Keras transfer-learning guide:
1. head (detector.training.head): the backbone is frozen; the dropout + dense head learns from pooled
   features, read from the bottleneck cache;
2. fine-tune (detector.training.finetune, optional): the top N Inception blocks, or all of them, train
   with the head at a lower learning rate, through distorted images. `all` with `weights="none"` is
   training from scratch, the only way to a useful model where ImageNet weights cannot be downloaded;
   its head phase is skipped, as features of a random backbone teach the head nothing.

A `TrainRun` carries one run through them: the config with its recipe defaults, the dataset, the run
directory (detector.training.checkpoint, so a killed run resumes) and the model being trained.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.data.folders import fingerprint, scan_datasets
from detector.evaluation.metrics import choose_thresholds, classification_report
from detector.model.meta import ModelMeta
from detector.model.predict import predict_batches
from detector.model.store import save_model_dir
from detector.training.checkpoint import RunDir, RunState
from detector.training.config import TrainConfig, with_recipe_defaults
from detector.training.finetune import fine_tune_phase
from detector.training.head import head_phase
from detector.training.inputs import PhaseData, class_folders, load_phase_data
from detector.training.start import fresh_model, init_from, resumed_meta

if TYPE_CHECKING:
    import keras

__all__ = ["TrainResult", "TrainRun", "train"]


@dataclass
class TrainResult:
    """A finished run: where the model went, its meta (thresholds, validation figures) and how it went."""

    model_dir: Path
    meta: ModelMeta
    phases: list[dict[str, Any]]  # per phase run: its name, epochs, best validation AP (and head accuracy)
    skipped: list[tuple[str, str]]  # (path, reason) of files that could not be read
    features_computed: int  # bottleneck features the head phase computed ...
    features_cached: int  # ... and read from the cache


class TrainRun:
    """One training run, from a config to a model directory.

    It holds the config (recipe defaults filled in), the dataset, the run directory with the resumable
    state, and, once started, the classifier, its meta and the decoded images. `input_size` is the one
    source of the model's input side for every stage (tile cutting, decoding, features, distortions):
    a resumed run's own, else the config's, which for `init` is the continued model's.
    """

    classifier: keras.Model
    meta: ModelMeta
    state: RunState
    data: PhaseData

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg = with_recipe_defaults(cfg)
        self.log = log
        self.started = time.monotonic()
        self.deadline = self.started + cfg.max_minutes * 60 if cfg.max_minutes else None
        self.out = Path(cfg.out)
        self.files = RunDir(self.out)
        self._resumed = self.files.load_state() if cfg.resume else None
        self.input_size: int = self._resumed.config["input_size"] if self._resumed else cfg.input_size
        roots = [class_folders(src, self.input_size, cfg.cache_dir, cfg.negative_class, log) for src in cfg.data]
        self.ds = scan_datasets(roots, cfg.negative_class, cfg.val_percent, cfg.test_percent)
        self.skipped: list[tuple[str, str]] = []
        self.features_computed = self.features_cached = 0

    def start(self) -> None:
        """Open the run directory (resuming, or discarding an unfinished run) and the model to train."""
        import keras

        cfg, files = self.cfg, self.files
        if self._resumed is not None:
            self.log(f"resuming: phase {self._resumed.phase}, {self._resumed.epoch} epoch(s) done")
        elif files.dir.exists():
            self.log(f"note: discarding an unfinished run in {files.dir} (pass --resume to continue it instead)")
            shutil.rmtree(files.dir)
        files.dir.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(cfg.seed)
        if self._resumed is None:
            self._start_model()
            return
        self.state = self._resumed
        self.classifier = keras.models.load_model(files.initial, compile=False, safe_mode=True)
        self.meta = init_from(cfg.init, self.ds)[1] if cfg.init else resumed_meta(self.ds, self.state.config)

    def _start_model(self) -> None:
        """A new run's model (continued from `init`, or new) and first phase, saved as its starting point.

        A network without pretrained weights that trains whole skips the head phase: features of a
        random backbone teach the head nothing."""
        cfg = self.cfg
        if cfg.init:
            self.classifier, self.meta = init_from(cfg.init, self.ds)
            first = "fine_tune" if cfg.fine_tune else "head"
            note = f"starting from {cfg.init} ({self.meta.weights_origin})"
        else:
            self.classifier, self.meta = fresh_model(cfg, self.ds, self.input_size)
            from_scratch = cfg.fine_tune == "all" and self.meta.weights_origin == "none"
            first = "fine_tune" if from_scratch else "head"
            note = "no pretrained weights and --fine-tune all: training the whole network from scratch"
            note = note if from_scratch else ""
        self.files.save_model(self.classifier, self.files.initial)
        self.state = RunState(phase=first, config=asdict(cfg))
        self.files.save_state(self.state)
        if note:
            self.log(note)

    def load_data(self) -> None:
        """Decode the train and val images (train larger when random crops need room)."""
        cfg = self.cfg
        crop_room = bool(cfg.random_crop or cfg.random_scale)
        self.data, self.skipped = load_phase_data(self.ds, self.input_size, crop_room, ", ".join(cfg.data), self.log)

    def run_phases(self) -> None:
        """The head phase, then the fine-tune phase, from wherever the state says the run stands."""
        if self.state.phase == "head":
            self._head()
        if self.state.phase == "fine_tune":
            fine_tune_phase(self, self.data)
            self.state.finished.append(
                {"phase": "fine_tune", "epochs": self.state.epoch, "best_val_ap": self.state.best}
            )
            self.state.phase = "done"

    def _head(self) -> None:
        """The head phase; then the fine-tune phase starts from the classifier with its trained head,
        unless no fine-tuning was asked for or the time budget is spent."""
        state = self.state
        outcome = head_phase(self, self.data.at_input_size(self.input_size))
        self.features_computed, self.features_cached = outcome.features_computed, outcome.features_cached
        state.finished.append(
            {
                "phase": "head",
                "epochs": state.epoch,
                "best_val_ap": state.best,
                "train_accuracy": outcome.train_accuracy,
            }
        )
        if self.cfg.fine_tune and (self.deadline is None or time.monotonic() < self.deadline):
            self.files.save_model(self.classifier, self.files.initial)
            self.state = RunState(phase="fine_tune", finished=state.finished, config=state.config)
            self.files.save_state(self.state)
        else:
            state.phase = "done"

    def finish(self) -> TrainResult:
        """Thresholds and validation figures on the final classifier, whole images as the user gives
        them; the model directory written and the run directory removed."""
        cfg, meta, data = self.cfg, self.meta, self.data
        val_probs = predict_batches(self.classifier, data.val_pixels, cfg.batch_size)
        y_val, classes, negative = data.y_val, self.ds.classes, self.ds.negative_class
        choice = choose_thresholds(val_probs, y_val, classes, negative) if len(y_val) else {}
        meta.thresholds = {c: float(ch.threshold) for c, ch in choice.items()}
        meta.validation = (
            classification_report(val_probs, y_val, classes, negative, meta.thresholds) if len(y_val) else {}
        )
        meta.validation["phases"] = self.state.finished
        meta.validation["train_seconds"] = round(time.monotonic() - self.started, 1)
        meta.data_fingerprint = fingerprint(data.train + data.val)
        save_model_dir(self.classifier, meta, self.out)
        shutil.rmtree(self.files.dir, ignore_errors=True)
        phases = self.state.finished
        return TrainResult(self.out, meta, phases, self.skipped, self.features_computed, self.features_cached)


def train(cfg: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    """Train a classifier on class folders or box datasets and write the model directory to `cfg.out`.

    The options the config leaves open (input size, head block, fine-tuning, distortions) come from the
    recipe for its weights (`with_recipe_defaults`). Every epoch is checkpointed under `cfg.out/.train`,
    so `resume=True` after a kill repeats at most the epoch that was running. `log` gets one line per
    step of the run (Keras prints its own epoch lines).

    Example:
        >>> from detector.training import TrainConfig, train
        >>> cfg = TrainConfig("demo-output/train/tiles", out="demo-output/model", weights="none", fine_tune="all")
        >>> result = train(cfg, log=lambda line: None)  # doctest: +SKIP
        >>> result.meta.thresholds  # doctest: +SKIP
        {'demo-logo': 0.62}
    """
    run = TrainRun(cfg, log)
    run.start()
    run.load_data()
    run.run_phases()
    return run.finish()
