"""training: a logo classifier from class folders or box datasets (see the README's Layout section).

`train(TrainConfig(...))` runs the two phases (head on cached features, then fine-tuning) and writes a
model directory; `mine_hard_negatives` adds a model's false alarms to its training tiles for another
round (`TrainConfig(init=...)`).

Modules, one job each: config (TrainConfig, recipes), run (`train` and the TrainRun it drives), start
(the model a run starts from), inputs (the decoded images), head and finetune (the two phases),
balance, checkpoint (resumable state, per-epoch control), bottleneck (the feature cache), mining.

The names below are imported on first use: the CLI reads `TrainConfig` at start-up to make its flags,
and that must not import scikit-learn, the scan pipeline and TensorFlow's helpers with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detector.training.config import RECIPES, TrainConfig, with_recipe_defaults
    from detector.training.finetune import set_trainable_blocks
    from detector.training.mining import MiningReport, mine_hard_negatives
    from detector.training.run import TrainResult, TrainRun, train

_HOMES = {
    "RECIPES": "config",
    "TrainConfig": "config",
    "with_recipe_defaults": "config",
    "set_trainable_blocks": "finetune",
    "MiningReport": "mining",
    "mine_hard_negatives": "mining",
    "TrainResult": "run",
    "TrainRun": "run",
    "train": "run",
}
__all__ = [
    "RECIPES",
    "MiningReport",
    "TrainConfig",
    "TrainResult",
    "TrainRun",
    "mine_hard_negatives",
    "set_trainable_blocks",
    "train",
    "with_recipe_defaults",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
