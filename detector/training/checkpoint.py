"""What makes a run resumable: its state and checkpoints on disk, written at the end of every epoch.

Every epoch ends with the model, its optimizer state and the early-stopping state on disk (atomically),
so `resume` after a SIGKILL repeats at most the epoch that was running. The same per-epoch callback
judges the epoch on validation (AP of the logo classes, then loss) and keeps the best weights.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detector.evaluation.metrics import positive_average_precision
from detector.model.store import write_json_atomic

if TYPE_CHECKING:
    import keras

RUN_DIR = ".train"


@dataclass
class RunState:
    """What survives a kill: where the run is and how early stopping stood."""

    phase: str  # "head", "fine_tune" or "done"
    epoch: int = 0
    best: float = -math.inf
    best_loss: float = math.inf
    wait: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    finished: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # the TrainConfig the run started with


class RunDir:
    """The run's working files under MODEL_DIR/.train: the state, the phase's starting model, the last
    epoch's checkpoint (model + optimizer) and the best weights so far."""

    def __init__(self, out: Path) -> None:
        self.dir = out / RUN_DIR
        self.state_path = self.dir / "state.json"
        self.initial = self.dir / "initial.keras"
        self.ckpt = self.dir / "ckpt.keras"
        self.best = self.dir / "best.weights.h5"

    def load_state(self) -> RunState | None:
        if not self.state_path.is_file():
            return None
        return RunState(**json.loads(self.state_path.read_text()))

    def save_state(self, state: RunState) -> None:
        write_json_atomic(self.state_path, asdict(state))

    def save_model(self, model: keras.Model, path: Path) -> None:
        """A whole model (.keras) or its weights (.weights.h5), written beside and renamed into place."""
        tmp = path.with_name(path.name.replace(".keras", ".tmp.keras").replace(".weights.h5", ".tmp.weights.h5"))
        if path.suffix == ".keras":
            model.save(tmp)
        else:
            model.save_weights(tmp)
        tmp.replace(path)


def validation_scores(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean AP of the logo classes, cross-entropy); the negative class is index 0 (Dataset puts it first)."""
    if not len(y):
        return float("nan"), float("nan")
    names = [str(i) for i in range(probs.shape[1])]
    ap = positive_average_precision(probs, y, names, names[0])
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))))
    return ap, loss


class EpochControl:
    """Keras callback: validation AP, early stopping, best weights and a checkpoint every epoch.

    Made by `EpochControl(run_dir, state, val_probs, y_val, patience, deadline, log)`; it subclasses
    keras.callbacks.Callback when first made, so importing this module does not import Keras."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return _epoch_control_class()(*args, **kwargs)


@functools.cache
def _epoch_control_class() -> type:
    import keras

    class _EpochControl(keras.callbacks.Callback):
        def __init__(
            self,
            run: RunDir,
            state: RunState,
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
            score, loss = validation_scores(self.val_probs(self.model), self.y_val)
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
            st.history.append({"epoch": epoch + 1, **{k: round(float(v), 5) for k, v in logs.items()}})
            self.run.save_model(self.model, self.run.ckpt)
            self.run.save_state(st)
            self._maybe_stop()

        def _maybe_stop(self) -> None:
            if self.state.wait >= self.patience:
                self.log(f"  early stop: validation AP/loss have not improved for {self.patience} epochs")
                self.model.stop_training = True
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.log("  time budget (--max-minutes) reached: stopping after this epoch")
                self.model.stop_training = True

    return _EpochControl


def callbacks(control: Any, logdir: str | None, phase: str) -> list:
    """The epoch control, and TensorBoard summaries under logdir/<phase> when asked for."""
    import keras

    cbs = [control]
    if logdir:
        cbs.append(keras.callbacks.TensorBoard(log_dir=str(Path(logdir) / phase)))
    return cbs
