"""What a training run is asked to do: `TrainConfig`, each option declared once, and the recipes that
fill in what it leaves open.

The CLI's `detect train` flags are made from these declarations (detector.options), so a field's name
is its flag's name and its help is the flag's help. Every value is checked when a `TrainConfig` is
made: a bad one raises `OptionError` naming the option, before any data is read or a model is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from detector.model.meta import BLOCKS, MIN_INPUT_SIZE
from detector.options import OptionError, check_fields, option

__all__ = ["BALANCE_MODES", "DISTORTIONS", "RECIPES", "TrainConfig", "with_recipe_defaults"]

BALANCE_MODES = ("class-weight", "upsample", "none")
DISTORTIONS = ("random_crop", "random_scale", "random_brightness", "random_color")
#: Input size and head block when not given, by whether the backbone is pretrained. Measured on the
#: FlickrLogos-27 dev photos with the pretrained stand-in (benchmarks/flickr27.py; README Results):
#: a linear head on mixed6 windows ranked brands best of mixed5/6/7, and 224 px keeps a 500x375 photo
#: near a second on 2 cores. From scratch, mixed2 at 128 px (13x13 maps) is what localizes (STACK-NOTES).
#: With pretrained weights the top two blocks under the head are then fine-tuned for 3 epochs with
#: distortions, BatchNorm frozen: on folds 0-1 of FlickrLogos-27 that lifted recall at 90% precision
#: (other brands as negatives) from about 0.12 (head only, all folds) to 0.35, box AP@0.5 0.05 -> 0.12.
RECIPES: dict[str, dict[str, Any]] = {
    "pretrained": {
        "input_size": 224,
        "cam_layer": "mixed6",
        "fine_tune": "2",
        "fine_tune_epochs": 3,
        "distortions": {"random_crop": 10.0, "random_scale": 15.0, "random_brightness": 20.0, "random_color": 20.0},
    },
    "scratch": {"input_size": 128, "cam_layer": "mixed2", "fine_tune": None, "fine_tune_epochs": 10, "distortions": {}},
}
#: Bounds of the documented ranges. They bound the work a config can ask for (an input side of 1024 px
#: already costs 19x the memory of the default 224) and keep out values Keras or TF reject mid-run
#: (dropout 1, a saturation range below 0, a negative seed).
MAX_INPUT_SIZE = 1024
MAX_STEPS = 10_000_000
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 4096
MAX_LEARNING_RATE = 10.0
_FINE_TUNE_WORDS = ("auto", "none", "all")


def _check_data(name: str, value: Any) -> list[str]:
    """One dataset path or several, as a non-empty list of text (paths are taken too)."""
    items = [value] if isinstance(value, str | os.PathLike) else value
    if not isinstance(items, list | tuple) or not items:
        raise OptionError(name, f"must be a dataset folder or a list of them, got {value!r:.60}")
    for item in items:
        if not isinstance(item, str | os.PathLike) or not str(item):
            raise OptionError(name, f"must be a dataset folder or a list of them, got {item!r:.60}")
    return [str(item) for item in items]


def _check_fine_tune(name: str, value: Any) -> str | None:
    """auto, none, all or a number of top blocks (a number may come as an int: it is kept as text)."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if text is None or text in _FINE_TUNE_WORDS:
        return text
    if isinstance(text, str) and text.isdigit() and 1 <= int(text) <= len(BLOCKS):
        return text
    raise OptionError(
        name, f"takes auto, none, a number of top Inception blocks (1..{len(BLOCKS)}) or all, got {value!r:.60}"
    )


@dataclass(frozen=True)
class TrainConfig:
    """A training run's options. Made only valid: the constructor checks and normalizes every field.

    `None` in input_size, cam_layer, fine_tune_epochs and the distortions means "the recipe's"
    (`with_recipe_defaults`, which `train` applies): what suits pretrained weights does not suit a
    network trained from scratch.

    Example:
        >>> TrainConfig("tiles", out="model", weights="none").data
        ['tiles']
        >>> TrainConfig("tiles", out="model", balance="oversample")
        Traceback (most recent call last):
        ...
        detector.options.OptionError: balance must be one of class-weight, upsample, none, got 'oversample'
    """

    data: list[str] = option(
        help="Class folders or box datasets (real photos, synthetic scenes); several train as one.",
        check=_check_data,
        argument=True,
    )
    out: str = option(help="The model directory to write.")
    weights: str = option("imagenet", "imagenet (Keras download/cache), none, or a weights file PATH.")
    input_size: int | None = option(
        None,
        f"Tile side in pixels (>= {MIN_INPUT_SIZE}). Default: 224 with pretrained weights, 128 without.",
        range=(MIN_INPUT_SIZE, MAX_INPUT_SIZE),
    )
    cam_layer: str | None = option(
        None,
        "Inception block feeding the head, mixed0..mixed10. Default: mixed6 pretrained, mixed2 without.",
        choices=BLOCKS,
    )
    dropout: float = option(0.5, "", range=(0.0, 0.99))
    negative_class: str = option("no-logo", "")
    # The head phase runs on cached features: milliseconds a step.
    head_steps: int = option(2000, "Optimizer steps of the head phase (cached features).", range=(1, MAX_STEPS))
    # Decayed to 1% of itself over head_steps.
    learning_rate: float = option(1e-3, "The head's peak learning rate (cosine decay).", range=(0.0, MAX_LEARNING_RATE))
    weight_decay: float = option(1e-4, "AdamW weight decay of the head.", range=(0.0, 1.0))
    batch_size: int = option(32, "", range=(1, MAX_BATCH_SIZE))
    balance: str = option("class-weight", "class-weight, upsample or none.", choices=BALANCE_MODES)
    fine_tune: str | None = option(
        "auto",
        "After the head: auto (top 2 blocks with pretrained weights, none without), none, N, or all.",
        check=_check_fine_tune,
    )
    fine_tune_epochs: int | None = option(None, "Default 3 pretrained (auto), else 10.", range=(1, MAX_EPOCHS))
    fine_tune_lr: float | None = option(None, "Default 1e-4 (1e-3 from scratch).", range=(0.0, MAX_LEARNING_RATE))
    # Validations without improvement: every HEAD_EVAL_STEPS head steps, every epoch when fine-tuning.
    patience: int = option(5, "Early stopping on validation AP.", range=(1, MAX_EPOCHS))
    # Distortions of the fine-tune phase (the head phase reads cached features of undistorted images).
    random_crop: float | None = option(
        None, "Percent of the side that may be cut (auto fine-tune: 10, else 0).", range=(0.0, 100.0)
    )
    random_scale: float | None = option(None, "Percent of extra zoom (auto: 15).", range=(0.0, 1000.0))
    random_brightness: float | None = option(None, "Percent brighter or darker (auto: 20).", range=(0.0, 100.0))
    random_color: float | None = option(
        None, "Percent of saturation change, hue a tenth of it (auto: 20).", range=(0.0, 100.0)
    )
    flip_left_right: bool = option(False, "")
    logdir: str | None = option(None, "TensorBoard summaries here.")
    resume: bool = option(False, "Finish a run that was killed.")
    seed: int = option(0, "", range=(0, 2**32 - 1))
    cache_dir: str | None = option(None, "Bottleneck cache (default ~/.cache/logo-detector).")
    val_percent: float = option(
        10.0, "Percent of each class's files (by name hash) for validation.", range=(0.0, 100.0), cli=False
    )
    test_percent: float = option(
        10.0, "Percent of each class's files (by name hash) held out for testing.", range=(0.0, 100.0), cli=False
    )
    max_minutes: float | None = option(None, "Stop after the epoch that passes this.", range=(0.0, 1e7))
    bn_momentum: float | None = option(
        None,
        "BatchNorm momentum of a new backbone (default 0.9 from scratch, 0.99 pretrained).",
        range=(0.0, 1.0),
        cli=False,
    )
    # e.g. after adding mined hard negatives: same classes, its input size and block.
    init: str | None = option(None, "Start from this trained model directory (e.g. after `detect mine`).")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.val_percent + self.test_percent >= 100.0:
            raise OptionError(
                "val_percent",
                f"plus test_percent must be below 100 (some files must train), got {self.val_percent:g} + "
                f"{self.test_percent:g}",
            )

    @property
    def distort(self) -> bool:
        """Whether the fine-tune phase distorts its images at all."""
        return bool(
            self.random_crop or self.random_scale or self.random_brightness or self.random_color or self.flip_left_right
        )


def with_recipe_defaults(cfg: TrainConfig) -> TrainConfig:
    """Fill what the user left open (input size, head block, fine-tuning and its distortions) from the
    recipe for these weights; a continued model (`init`) keeps its own size, block and kind of weights."""
    from detector.model.network import resolve_weights
    from detector.model.store import read_meta

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
