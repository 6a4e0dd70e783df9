"""Image pyramid and tile geometry (pure numpy, no model): where the classifier looks.

A logo fills some tile well at some scale: at scale s a logo of L pixels spans L*s pixels of a T-pixel
tile, and the classifier was trained on logos covering roughly a quarter to nine tenths of the tile.
The scanner and the synthetic-data tiler share these functions, so training tiles look like scan tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from detector.errors import DetectorError

#: Fraction of the tile side the smallest / largest logo of the range should span at its level.
SMALL_LOGO_FILL = 0.35
LARGE_LOGO_FILL = 0.85
#: Default logo range, as fractions of the image's short side, when no pixels are given.
DEFAULT_MIN_LOGO_FRACTION = 0.06
DEFAULT_MAX_LOGO_FRACTION = 0.7
#: Ratio between neighbouring pyramid scales.
OCTAVE_STEP = 2.5


@dataclass(frozen=True)
class Tile:
    """One window: `scale` of the pyramid level and its box in that level's pixels."""

    scale: float
    x: int
    y: int
    size: int

    def box(self) -> tuple[float, float, float, float]:
        """The tile's box (x1, y1, x2, y2) in original image pixels."""
        s = self.scale
        return (self.x / s, self.y / s, (self.x + self.size) / s, (self.y + self.size) / s)


def scales_for_logo_range(tile: int, min_logo: float, max_logo: float, octave_step: float = OCTAVE_STEP) -> list[float]:
    """Pyramid scales so that logos from min_logo to max_logo pixels each fill part of some tile.

    The smallest logo spans SMALL_LOGO_FILL of a tile at the finest level, the largest LARGE_LOGO_FILL at
    the coarsest; levels in between are geometric with ratio at most `octave_step`, largest scale first.
    """
    if min_logo <= 0 or max_logo < min_logo:
        raise ValueError("need 0 < min_logo <= max_logo")
    s_hi, s_lo = SMALL_LOGO_FILL * tile / min_logo, LARGE_LOGO_FILL * tile / max_logo
    if s_lo >= s_hi:
        return [math.sqrt(s_hi * s_lo)]
    n = math.ceil(math.log(s_hi / s_lo, octave_step) - 1e-9) + 1
    return [s_hi * (s_lo / s_hi) ** (i / (n - 1)) for i in range(n)]


def default_scales(width: int, height: int, tile: int) -> list[float]:
    short = min(width, height)
    return scales_for_logo_range(tile, DEFAULT_MIN_LOGO_FRACTION * short, DEFAULT_MAX_LOGO_FRACTION * short)


def windows_along(length: int, tile: int, stride: int) -> int:
    """How many windows `_starts` gives along an axis of `length` pixels, without building them."""
    return 1 if length <= tile else -(-(length - tile) // stride) + 1


def _starts(length: int, tile: int, stride: int) -> list[int]:
    """Window starts along one axis; the last window is aligned to the border so every pixel is covered."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def level_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def window_stride(tile: int, overlap: float) -> int:
    return max(1, round(tile * (1 - overlap)))


def count_windows(width: int, height: int, scales: list[float], tile: int, overlap: float = 0.5) -> int:
    """The number of windows `pyramid_tiles` would cut, in O(levels): what the work budget counts."""
    stride = window_stride(tile, overlap)
    total = 0
    for s in scales:
        w, h = level_size(width, height, s)
        total += windows_along(w, tile, stride) * windows_along(h, tile, stride)
    return total


def tiles_for_level(width: int, height: int, scale: float, tile: int, overlap: float = 0.5) -> list[Tile]:
    if not 0 <= overlap < 1:
        raise ValueError("overlap must be in [0, 1)")
    w, h = level_size(width, height, scale)
    stride = window_stride(tile, overlap)
    return [Tile(scale, x, y, tile) for y in _starts(h, tile, stride) for x in _starts(w, tile, stride)]


def pyramid_tiles(width: int, height: int, scales: list[float], tile: int, overlap: float = 0.5) -> list[Tile]:
    return [t for s in scales for t in tiles_for_level(width, height, s, tile, overlap)]


def resize_level(image: np.ndarray, scale: float) -> np.ndarray:
    h, w = image.shape[:2]
    nw, nh = level_size(w, h, scale)
    if (nw, nh) == (w, h):
        return image
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (nw, nh), interpolation=interp)


def cut_tiles(
    image: np.ndarray, tiles: list[Tile], pad_value: int = 0, levels: dict[float, np.ndarray] | None = None
) -> np.ndarray:
    """Pixels of every tile (N, T, T, C); a level smaller than a tile is padded at its right/bottom.

    `levels` caches the resized pyramid levels between calls, so a scan can cut its tiles one batch
    at a time (memory: the levels and one batch, not every window of the image at once)."""
    if not tiles:
        return np.zeros((0, 0, 0) + image.shape[2:], image.dtype)
    size = tiles[0].size
    out = np.full((len(tiles), size, size) + image.shape[2:], pad_value, image.dtype)
    levels = {} if levels is None else levels
    for i, t in enumerate(tiles):
        if t.scale not in levels:
            levels[t.scale] = resize_level(image, t.scale)
        lvl = levels[t.scale]
        patch = lvl[t.y : t.y + size, t.x : t.x + size]
        out[i, : patch.shape[0], : patch.shape[1]] = patch
    return out


# -- the work budget --------------------------------------------------------------------------------


class BudgetError(DetectorError):
    """An image whose pyramid cannot be scanned within the window budget (an error record says why)."""


@dataclass(frozen=True)
class PyramidPlan:
    """The levels one image is scanned at, how many windows they hold, and what the budget changed."""

    scales: list[float]
    windows: int
    note: str = ""  # empty when the plan is the one asked for


def capped_logo_scales(tile: int, min_logo: float, max_logo: float, max_upscale: float) -> list[float]:
    """`scales_for_logo_range`, with no level enlarging the image more than `max_upscale`.

    A logo smaller than SMALL_LOGO_FILL * tile / max_upscale pixels would need more enlargement than
    allowed, so the range starts there: the levels are spaced over the logo sizes that can matter,
    instead of clamping a finer pyramid (which would stack near-identical levels at the cap).
    """
    lo = max(min_logo, SMALL_LOGO_FILL * tile / max_upscale)
    hi = max(max_logo, lo)
    return [min(s, max_upscale) for s in scales_for_logo_range(tile, lo, hi)]


def _fmt_scales(scales: list[float]) -> str:
    return ",".join(f"{s:.3g}" for s in scales)


def fit_budget(
    width: int, height: int, tile: int, scales: list[float], overlap: float, max_windows: int, exact: bool
) -> PyramidPlan:
    """The pyramid within `max_windows` windows, or BudgetError saying why it cannot be.

    `exact` (scales the caller named): never changed, refused when over the budget. Otherwise every
    level is coarsened by one common factor, the largest that fits (a gentle loss: the smallest
    logos found grow by that factor), and levels where even a logo as tall as the image's short side
    would be under SMALL_LOGO_FILL of a tile are dropped. The count is arithmetic (`count_windows`),
    so nothing is allocated before the plan fits.
    """
    levels = list(dict.fromkeys(scales))  # the given order, each scale once
    need = count_windows(width, height, levels, tile, overlap)
    if need <= max_windows:
        return PyramidPlan(levels, need)
    where = f"this {width}x{height} image"
    if exact:
        raise BudgetError(
            f"scales {_fmt_scales(levels)} need {need:,} windows on {where}, over max_windows {max_windows:,}: "
            "use smaller scales or raise max_windows"
        )
    floor = SMALL_LOGO_FILL * tile / min(width, height)

    def shrunk(f: float) -> list[float]:
        return [s * f for s in levels if s * f >= floor * (1 - 1e-9)]

    f_lo = floor / max(levels)  # the finest level at the floor: the least work that still sees anything
    least = count_windows(width, height, shrunk(f_lo), tile, overlap) if f_lo <= 1 else need
    if f_lo > 1 or least > max_windows:
        raise BudgetError(
            f"{where} needs at least {least:,} windows (max_windows {max_windows:,}) to see a logo as tall as "
            "the image: crop or split it, or raise max_windows"
        )
    f_hi = 1.0
    for _ in range(50):  # count is monotone in f: bisect for the largest factor that fits
        mid = (f_lo + f_hi) / 2
        if count_windows(width, height, shrunk(mid), tile, overlap) <= max_windows:
            f_lo = mid
        else:
            f_hi = mid
    fitted = shrunk(f_lo)
    got = count_windows(width, height, fitted, tile, overlap)
    note = (
        f"pyramid coarsened x{f_lo:.3g} to fit max_windows {max_windows:,} ({need:,} windows needed): "
        f"scales {_fmt_scales(fitted)} instead of {_fmt_scales(levels)}"
    )
    return PyramidPlan(fitted, got, note)
