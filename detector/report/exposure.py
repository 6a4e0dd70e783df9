"""Exposure fields of one detection: how big, where, how sharp, and how prominent a logo is.

A list of boxes is not what a brand manager reads; sponsorship analytics rate each sighting by its
size in the frame, its placement, its clarity and the confidence in it. These fields are computed
once, at scan time (sharpness needs the pixels), and written beside the boxes as `exposure`, one
entry per box in the same order, so nothing in the existing records changes.

Formulas (also in the README, "Exposure fields"):
- `area_share` = box area / image area;
- `position` = the box centre in image fractions (`x`, `y` in 0..1) and its `zone` in a 3x3 grid
  (`top-left` .. `bottom-right`, the middle one `middle-center`);
- `edge_distance` = the gap between the box and the nearest image border / the image's short side
  (0 when it touches a border);
- `sharpness` = v / (v + 100), v the variance of the Laplacian of the box's grey pixels (0 flat or
  blurred, 0.5 at v = 100, the usual blur-detection cut, towards 1 crisp);
- `prominence` = score x (0.5 size + 0.3 centrality + 0.2 sharpness), with size = min(1,
  sqrt(area_share / 0.25)) (a logo's side is what the eye judges; a quarter of the frame or more is
  full size) and centrality = 1 - (distance of the centre from the image centre) / (that distance at
  a corner). It lies in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

#: Version of the exposure fields (documented in the README's record schema).
EXPOSURE_VERSION = 1

#: Laplacian variance at which sharpness is 0.5.
SHARPNESS_HALF = 100.0
#: Area share at and above which a box counts as full size in the prominence.
FULL_SIZE_SHARE = 0.25
PROMINENCE_WEIGHTS = {"size": 0.5, "centrality": 0.3, "sharpness": 0.2}

_ROWS = ("top", "middle", "bottom")
_COLS = ("left", "center", "right")
ZONES = tuple(f"{r}-{c}" for r in _ROWS for c in _COLS)


def zone_of(x: float, y: float) -> str:
    """The 3x3 zone name of a point given in image fractions."""
    col = min(2, max(0, int(x * 3)))
    row = min(2, max(0, int(y * 3)))
    return f"{_ROWS[row]}-{_COLS[col]}"


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian of a grey crop (0 for crops under 3 px on a side)."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    return float(cv2.Laplacian(gray, cv2.CV_64F, ksize=1).var())


def sharpness_of(pixels: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, float]:
    """(normalised sharpness in [0, 1), raw Laplacian variance) inside a box of an RGB image."""
    h, w = pixels.shape[:2]
    x1, y1 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x2, y2 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    if x2 - x1 < 3 or y2 - y1 < 3:
        return 0.0, 0.0
    crop = pixels[y1:y2, x1:x2]
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    v = laplacian_variance(gray)
    return v / (v + SHARPNESS_HALF), v


def prominence(score: float, area_share: float, cx: float, cy: float, sharpness: float) -> float:
    """score x (0.5 size + 0.3 centrality + 0.2 sharpness); see the module docstring."""
    size = min(1.0, math.sqrt(max(area_share, 0.0) / FULL_SIZE_SHARE))
    centrality = 1.0 - min(1.0, math.hypot(cx - 0.5, cy - 0.5) / math.hypot(0.5, 0.5))
    wt = PROMINENCE_WEIGHTS
    return float(score) * (wt["size"] * size + wt["centrality"] * centrality + wt["sharpness"] * sharpness)


def exposure_fields(
    box: tuple[float, float, float, float], score: float, width: int, height: int, pixels: np.ndarray | None
) -> dict[str, Any]:
    """The exposure entry of one box (x1, y1, x2, y2 in pixels) in a width x height image.

    Without pixels, `sharpness` is None and the prominence counts it as 0.

    Example:
        >>> e = exposure_fields((270, 190, 370, 290), 0.9, 640, 480, None)
        >>> e["area_share"], e["position"]["zone"]
        (0.032552, 'middle-center')
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(int(width), 1), max(int(height), 1)
    bw, bh = max(0.0, min(x2, w) - max(x1, 0.0)), max(0.0, min(y2, h) - max(y1, 0.0))
    area = bw * bh / (w * h)
    cx, cy = min(1.0, max(0.0, (x1 + x2) / 2 / w)), min(1.0, max(0.0, (y1 + y2) / 2 / h))
    edge = max(0.0, min(x1, y1, w - x2, h - y2)) / min(w, h)
    sharp, raw = sharpness_of(pixels, (x1, y1, x2, y2)) if pixels is not None else (None, None)
    return {
        "area_share": round(area, 6),
        "position": {"x": round(cx, 4), "y": round(cy, 4), "zone": zone_of(cx, cy)},
        "edge_distance": round(edge, 4),
        "sharpness": None if sharp is None else round(sharp, 4),
        "laplacian_variance": None if raw is None else round(raw, 1),
        "prominence": round(prominence(score, area, cx, cy, sharp or 0.0), 4),
    }


def add_exposure(result: Any, pixels: np.ndarray | None, thresholds: dict[str, float] | None = None) -> Any:
    """Fill a ScanResult's `exposure` (one entry per box) and `thresholds`; returns the result.

    Called where the pixels are still at hand (folder scans, video frames); an error record is left
    as it is."""
    if result.errors:
        return result
    result.exposure = [
        exposure_fields((b.x1, b.y1, b.x2, b.y2), b.score, result.width, result.height, pixels) for b in result.boxes
    ]
    if thresholds is not None:
        result.thresholds = dict(thresholds)
    return result


def image_thresholds(meta: Any) -> dict[str, float]:
    """The image-level threshold of each logo class of a model (what the verdicts compare with)."""
    return {c: float(meta.image_thresholds.get(c, meta.threshold(c))) for c in meta.positive_classes}
