"""Scan options and their one validation, shared by the CLI, the Python API and the server.

Every value is checked when a `ScanOptions` is made, so no front end can pass a value that crashes
later: numbers must be finite and inside the documented range, names must be known, and the work an
option can ask for is bounded (at most MAX_SCALES pyramid levels, overlap at most MAX_OVERLAP, never
upscaling beyond `max_upscale`, at most `max_windows` windows per image). A bad value raises
`OptionError`, whose message names the option (not a CLI flag), so the CLI prints it as one line and
the server returns it as a 422.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from detector.errors import DetectorError
from detector.pipeline.boxes import MERGE_METHODS
from detector.pipeline.cam import CAM_METHODS

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


class OptionError(DetectorError):
    """A scan option outside its range; `option` is its name (the server's 422 names it too)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option} {message}")
        self.option = option


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_number(name: str, value: Any, lo: float, hi: float) -> float:
    """A finite real number (not a bool) in [lo, hi], as a float; else OptionError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionError(name, f"must be a number in [{lo:g}, {hi:g}], got {_show(value)}")
    v = float(value)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise OptionError(name, f"must be a finite number in [{lo:g}, {hi:g}], got {_show(value)}")
    return v


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """A whole number (not a bool) in [lo, hi]; else OptionError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise OptionError(name, f"must be a whole number in [{lo}, {hi}], got {_show(value)}")
    v = int(value)
    if not lo <= v <= hi:
        raise OptionError(name, f"must be a whole number in [{lo}, {hi}], got {_show(value)}")
    return v


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise OptionError(name, f"must be one of {', '.join(choices)}, got {_show(value)}")
    return value


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise OptionError(name, f"must be true or false, got {_show(value)}")
    return value


def parse_scales(text: str) -> tuple[float, ...]:
    """'1,0.5,0.25' -> (1.0, 0.5, 0.25); the ranges are checked by ScanOptions."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > MAX_SCALES:
        raise OptionError("scales", f"takes at most {MAX_SCALES} numbers, got {len(parts)}")
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise OptionError("scales", "takes numbers separated by commas, e.g. 1,0.5,0.25") from None


@dataclass(frozen=True)
class ScanOptions:
    """How one image is scanned. Made only valid: the constructor checks and normalizes every field."""

    scales: tuple[float, ...] | None = None  # pyramid scales; None: from min/max logo or the default range
    min_logo: float | None = None  # pixels
    max_logo: float | None = None
    overlap: float = 0.5
    batch_size: int = 32
    boxes: bool = True
    heatmap: bool = False
    cam_threshold: float | None = None  # fraction of each tile map's peak; None: the model's tuned value
    cam_method: str = "gradcam"
    tile_threshold: float | None = None  # None: the model's per-class tile thresholds
    join_cells: float | None = None  # CAM fragments this many map cells apart are one logo; None: the model's
    merge: str = "nms"  # how boxes of the pyramid levels become one per logo (see boxes.merge_levels)
    mode: str = "tiles"  # "tiles": cut every window; "dense": one backbone pass per level (detector.pipeline.dense)
    calibrated_boxes: bool = True  # apply the model's box calibration (detector.pipeline.calibration)
    max_upscale: float = DEFAULT_MAX_UPSCALE  # no pyramid level enlarges the image more than this
    max_windows: int = DEFAULT_MAX_WINDOWS  # windows per image, all levels together (both modes)

    def __post_init__(self) -> None:
        for name, value in self._checked().items():
            object.__setattr__(self, name, value)

    def _checked(self) -> dict[str, Any]:
        up = check_number("max_upscale", self.max_upscale, *UPSCALE_RANGE)
        out: dict[str, Any] = {
            "max_upscale": up,
            "max_windows": check_int("max_windows", self.max_windows, 1, MAX_WINDOWS_LIMIT),
            "overlap": check_number("overlap", self.overlap, 0.0, MAX_OVERLAP),
            "batch_size": check_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE),
            "cam_method": _check_choice("cam_method", self.cam_method, CAM_METHODS),
            "merge": _check_choice("merge", self.merge, MERGE_METHODS),
            "mode": _check_choice("mode", self.mode, SCAN_MODES),
        }
        for name in ("boxes", "heatmap", "calibrated_boxes"):
            out[name] = _check_bool(name, getattr(self, name))
        for name in ("cam_threshold", "tile_threshold"):
            v = getattr(self, name)
            out[name] = None if v is None else check_number(name, v, 0.0, 1.0)
        out["join_cells"] = None if self.join_cells is None else check_number("join_cells", self.join_cells, 0, 16)
        for name in ("min_logo", "max_logo"):
            v = getattr(self, name)
            out[name] = None if v is None else check_number(name, v, *LOGO_PX)
        if out["min_logo"] is not None and out["max_logo"] is not None and out["min_logo"] > out["max_logo"]:
            raise OptionError("min_logo", f"must be at most max_logo ({out['max_logo']:g}), got {out['min_logo']:g}")
        out["scales"] = self._checked_scales(up)
        return out

    def _checked_scales(self, max_upscale: float) -> tuple[float, ...] | None:
        if self.scales is None:
            return None
        if isinstance(self.scales, str | bytes) or not isinstance(self.scales, Sequence | np.ndarray):
            raise OptionError("scales", f"must be a list of numbers, got {_show(self.scales)}")
        if not 1 <= len(self.scales) <= MAX_SCALES:
            raise OptionError("scales", f"takes 1 to {MAX_SCALES} numbers, got {len(self.scales)}")
        out = []
        for s in self.scales:
            v = check_number("scales", s, MIN_SCALE, UPSCALE_RANGE[1])
            if v > max_upscale:
                raise OptionError(
                    "scales", f"{v:g} is above max_upscale ({max_upscale:g}); raise max_upscale to enlarge more"
                )
            out.append(v)
        return tuple(out)

    def validate(self) -> None:
        """Kept for callers of the old API: a ScanOptions is checked when it is made."""
        self._checked()


OPTION_NAMES = tuple(f.name for f in fields(ScanOptions))
