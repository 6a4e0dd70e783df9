"""Scan options: how one image is scanned, each option declared once (detector.options).

Every value is checked when a `ScanOptions` is made, so no front end can pass a value that crashes
later: numbers must be finite and inside the documented range, names must be known, and the work an
option can ask for is bounded (at most MAX_SCALES pyramid levels, overlap at most MAX_OVERLAP, never
upscaling beyond `max_upscale`, at most `max_windows` windows per image). A bad value raises
`OptionError`, whose message names the option (not a CLI flag), so the CLI prints it as one line and
the server returns it as a 422. The CLI's flags and the server's parameters are made from these fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from detector.options import OptionError, check_fields, check_int, check_number, option
from detector.pipeline.cam import CAM_METHODS
from detector.pipeline.merge import MERGE_METHODS

__all__ = ["OPTION_NAMES", "SCAN_MODES", "OptionError", "ScanOptions", "check_int", "check_number", "parse_scales"]

SCAN_MODES = ("tiles", "dense")
#: Limits of the documented ranges (README "Bad input").
MAX_SCALES = 8
MIN_SCALE = 0.001
MAX_OVERLAP = 0.75
LOGO_PX = (1.0, 1_000_000.0)
UPSCALE_RANGE = (0.05, 16.0)
DEFAULT_MAX_UPSCALE = 2.0
#: Windows per image over all pyramid levels. The default pyramid of a 4:3 photo needs 206, of a 16:9
#: one 271, of a 21:9 one ~360; only stranger shapes (strips, panoramas) hit the default.
DEFAULT_MAX_WINDOWS = 512
MAX_WINDOWS_LIMIT = 8192
MAX_BATCH_SIZE = 1024
MAX_JOIN_CELLS = 16.0


def parse_scales(text: str) -> tuple[float, ...]:
    """'1,0.5,0.25' -> (1.0, 0.5, 0.25); the ranges are checked by ScanOptions."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > MAX_SCALES:
        raise OptionError("scales", f"takes at most {MAX_SCALES} numbers, got {len(parts)}")
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise OptionError("scales", "takes numbers separated by commas, e.g. 1,0.5,0.25") from None


def _check_scales(name: str, value: Any) -> tuple[float, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise OptionError(name, f"must be a list of numbers, got {value!r:.60}")
    if not 1 <= len(value) <= MAX_SCALES:
        raise OptionError(name, f"takes 1 to {MAX_SCALES} numbers, got {len(value)}")
    return tuple(check_number(name, s, MIN_SCALE, UPSCALE_RANGE[1]) for s in value)


@dataclass(frozen=True)
class ScanOptions:
    """How one image is scanned. Made only valid: the constructor checks and normalizes every field.

    Example:
        >>> ScanOptions(mode="dense", scales=[1, 0.5]).scales
        (1.0, 0.5)
        >>> ScanOptions(overlap=2)
        Traceback (most recent call last):
        ...
        detector.options.OptionError: overlap must be a finite number in [0, 0.75], got 2
    """

    scales: tuple[float, ...] | None = option(
        None,
        f"Pyramid scales, e.g. 1,0.5,0.25: 1 to {MAX_SCALES} numbers, each at most max_upscale "
        "(default: from min_logo/max_logo, or the default logo range).",
        parse=lambda text: parse_scales(text),
        check=_check_scales,
        api=True,
    )
    min_logo: float | None = option(None, "Smallest logo to look for, pixels.", range=LOGO_PX, api=True)
    max_logo: float | None = option(None, "Largest logo to look for, pixels.", range=LOGO_PX, api=True)
    overlap: float = option(0.5, "Tile overlap.", range=(0.0, MAX_OVERLAP), api=True)
    batch_size: int = option(32, "Tiles per model call.", range=(1, MAX_BATCH_SIZE))
    boxes: bool = option(True, "Find boxes; false gives verdicts and scores only, faster.", cli=False, api=True)
    heatmap: bool = option(
        False,
        "Heatmaps per label (CLI: written with --out; server: PNG data URLs in `heatmaps`).",
        flag="--heatmap",
        api=True,
    )
    cam_threshold: float | None = option(
        None,
        "Box pixels: this fraction of a tile map's peak (default: the model's calibrated one).",
        range=(0.0, 1.0),
        api=True,
    )
    cam_method: str = option("gradcam", "gradcam or gradcam++.", choices=tuple(CAM_METHODS), api=True)
    tile_threshold: float | None = option(
        None,
        "Tile probability that counts as evidence (default: the model's per-class thresholds).",
        range=(0.0, 1.0),
        api=True,
    )
    box_floor: float | None = option(
        None,
        "Also look for boxes of labels judged absent whose image score reaches this (default: boxes of "
        "present labels only): more logos boxed, at a lower precision.",
        range=(0.0, 1.0),
        api=True,
    )
    join_cells: float | None = option(
        None,
        "CAM fragments this many map cells apart are one logo (default: the model's).",
        range=(0.0, MAX_JOIN_CELLS),
    )
    merge: str = option(
        "nms", "Boxes across pyramid levels: nms, fuse or finest.", choices=tuple(MERGE_METHODS), api=True
    )
    mode: str = option(
        "tiles",
        "tiles (cut every window) or dense (one backbone pass per pyramid level, faster).",
        choices=SCAN_MODES,
        api=True,
    )
    box_calibration: bool = option(
        True, "Apply the box size correction and box scores `detect calibrate` fitted.", api=True
    )
    max_upscale: float = option(
        DEFAULT_MAX_UPSCALE, "No pyramid level enlarges the image more than this.", range=UPSCALE_RANGE, api=True
    )
    max_windows: int = option(
        DEFAULT_MAX_WINDOWS,
        "Windows per image over all levels; a default pyramid over it is coarsened to fit.",
        range=(1, MAX_WINDOWS_LIMIT),
        api=True,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.min_logo is not None and self.max_logo is not None and self.min_logo > self.max_logo:
            raise OptionError("min_logo", f"must be at most max_logo ({self.max_logo:g}), got {self.min_logo:g}")
        for v in self.scales or ():
            if v > self.max_upscale:
                raise OptionError(
                    "scales", f"{v:g} is above max_upscale ({self.max_upscale:g}); raise max_upscale to enlarge more"
                )


OPTION_NAMES = tuple(f.name for f in fields(ScanOptions))
