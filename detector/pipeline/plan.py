"""Which windows one image is scanned at: the pyramid levels, within the options' work budget.

The levels come from the model's input size and the logo sizes asked for (or the default range);
`tiling.fit_budget` keeps them within `max_windows` and `max_upscale` before any pixel is resized.
"""

from __future__ import annotations

from detector.pipeline.options import ScanOptions
from detector.pipeline.tiling import (
    DEFAULT_MAX_LOGO_FRACTION,
    DEFAULT_MIN_LOGO_FRACTION,
    PyramidPlan,
    capped_logo_scales,
    fit_budget,
)


def plan_pyramid(width: int, height: int, tile: int, opts: ScanOptions) -> PyramidPlan:
    """The levels one image is scanned at, within the options' work budget (see tiling.fit_budget).

    Scales the caller names are kept as they are (refused when over `max_windows`); levels derived
    from logo sizes never enlarge beyond `max_upscale` and are coarsened to fit the budget, so a
    photo's cost follows its pixels, not the inverse of its size.
    """
    if opts.scales:
        return fit_budget(width, height, tile, list(opts.scales), opts.overlap, opts.max_windows, exact=True)
    short = min(width, height)
    if opts.min_logo or opts.max_logo:
        hi = opts.max_logo or max(opts.min_logo or 0.0, 0.7 * short)
        lo = opts.min_logo or min(0.04 * short, hi)
    else:
        lo, hi = DEFAULT_MIN_LOGO_FRACTION * short, DEFAULT_MAX_LOGO_FRACTION * short
    levels = capped_logo_scales(tile, lo, hi, opts.max_upscale)
    return fit_budget(width, height, tile, levels, opts.overlap, opts.max_windows, exact=False)


def plan_scales(width: int, height: int, tile: int, opts: ScanOptions) -> list[float]:
    """The pyramid scales of one image (largest first); raises BudgetError when none fit the budget."""
    return plan_pyramid(width, height, tile, opts).scales
