"""Stage unit tests, tiling and plan (detector/pipeline/tiling.py, plan.py): where the classifier looks.

Pure geometry, no model: windows cover every pixel of every level, the work budget holds, the pixels
cut are the image's. (tests/test_budget.py checks the plans of whole photos against a scan.)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.pipeline.options import ScanOptions
from detector.pipeline.plan import plan_pyramid, plan_scales
from detector.pipeline.tiling import (
    LARGE_LOGO_FILL,
    OCTAVE_STEP,
    SMALL_LOGO_FILL,
    BudgetError,
    Tile,
    capped_logo_scales,
    count_windows,
    cut_tiles,
    fit_budget,
    level_size,
    pyramid_tiles,
    scales_for_logo_range,
    tiles_for_level,
)


def test_tile_box_is_in_image_pixels() -> None:
    # level pixels 10..42 x 20..52 of the half-size level are image pixels 20..84 x 40..104
    assert Tile(0.5, 10, 20, 32).box() == (20.0, 40.0, 84.0, 104.0)
    assert Tile(2.0, 10, 20, 32).box() == (5.0, 10.0, 21.0, 26.0)


def test_windows_along_one_level_by_hand() -> None:
    # 200 px at tile 80, overlap 0.5 (stride 40): starts 0, 40, 80, 120, and 120 already ends at 200
    tiles = tiles_for_level(200, 80, 1.0, 80, 0.5)
    assert sorted({t.x for t in tiles}) == [0, 40, 80, 120] and {t.y for t in tiles} == {0}
    # 210 px: the last window is aligned to the border, 130
    assert sorted({t.x for t in tiles_for_level(210, 80, 1.0, 80, 0.5)}) == [0, 40, 80, 120, 130]
    # a level smaller than a tile is one window at the origin
    assert tiles_for_level(50, 30, 1.0, 80) == [Tile(1.0, 0, 0, 80)]
    # the level of a 400x300 image at scale 0.5 is 200x150: 4 x 3 windows (starts 0, 40, 70 in y)
    assert level_size(400, 300, 0.5) == (200, 150)
    assert sorted({t.y for t in tiles_for_level(400, 300, 0.5, 80)}) == [0, 40, 70]
    assert count_windows(400, 300, [0.5], 80) == 12 == len(tiles_for_level(400, 300, 0.5, 80))
    with pytest.raises(ValueError):
        tiles_for_level(100, 100, 1.0, 80, overlap=1.0)


@settings(max_examples=50, deadline=None)
@given(
    w=st.integers(1, 400),
    h=st.integers(1, 400),
    tile=st.integers(16, 128),
    overlap=st.sampled_from([0.0, 0.25, 0.5, 0.75]),
    scales=st.lists(st.floats(0.05, 2.0), min_size=1, max_size=3),
)
def test_windows_cover_every_pixel_of_every_level(w, h, tile, overlap, scales) -> None:
    tiles = pyramid_tiles(w, h, scales, tile, overlap)
    assert len(tiles) == count_windows(w, h, scales, tile, overlap)
    stride = max(1, round(tile * (1 - overlap)))
    for s in dict.fromkeys(scales):
        lw, lh = level_size(w, h, s)
        mine = [t for t in tiles if t.scale == s]
        covered = np.zeros((lh, lw), bool)
        for t in mine:
            assert t.size == tile and t.x >= 0 and t.y >= 0
            assert t.x + tile <= lw or t.x == 0  # inside the level; only a level under a tile is padded
            assert t.y + tile <= lh or t.y == 0
            covered[t.y : t.y + tile, t.x : t.x + tile] = True
        assert covered.all()
        for starts in ({t.x for t in mine}, {t.y for t in mine}):  # neighbours overlap at least `overlap`
            gaps = np.diff(sorted(starts))
            assert (gaps >= 1).all() and (gaps <= stride).all()


def test_scales_for_a_logo_range_by_hand() -> None:
    # tile 100: a 35-px logo spans SMALL_LOGO_FILL (0.35) of the tile at scale 1, an 85-px one
    # LARGE_LOGO_FILL at scale 1 too: one level
    assert (SMALL_LOGO_FILL, LARGE_LOGO_FILL, OCTAVE_STEP) == (0.35, 0.85, 2.5)
    assert scales_for_logo_range(100, 35, 85) == [pytest.approx(1.0)]
    # logos 14..212.5 px: scale 35/14 = 2.5 down to 85/212.5 = 0.4, ratio 6.25 = 2.5^2: three levels
    assert scales_for_logo_range(100, 14, 212.5) == pytest.approx([2.5, 1.0, 0.4])
    with pytest.raises(ValueError):
        scales_for_logo_range(100, 0, 10)
    with pytest.raises(ValueError):
        scales_for_logo_range(100, 20, 10)


@settings(max_examples=50, deadline=None)
@given(
    tile=st.integers(75, 512),
    lo=st.floats(1, 5000),
    ratio=st.floats(1, 200),
    max_upscale=st.floats(0.05, 16),
)
def test_capped_logo_scales_never_enlarge_beyond_the_cap(tile, lo, ratio, max_upscale) -> None:
    scales = capped_logo_scales(tile, lo, lo * ratio, max_upscale)
    assert scales and max(scales) <= max_upscale
    assert scales == sorted(scales, reverse=True)
    for a, b in zip(scales, scales[1:], strict=False):  # neighbours at most an octave step apart
        assert a / b <= OCTAVE_STEP * (1 + 1e-9)
    if SMALL_LOGO_FILL * tile / lo <= max_upscale:  # the cap does not bite: the smallest logo fills 35%
        assert len(scales) == 1 or scales[0] == pytest.approx(SMALL_LOGO_FILL * tile / lo)


@settings(max_examples=50, deadline=None)
@given(
    w=st.integers(1, 20_000),
    h=st.integers(1, 20_000),
    tile=st.integers(75, 299),
    max_windows=st.integers(1, 2048),
    max_upscale=st.floats(0.05, 8),
)
def test_a_plan_stays_within_max_windows_and_max_upscale(w, h, tile, max_windows, max_upscale) -> None:
    opts = ScanOptions(max_windows=max_windows, max_upscale=max_upscale)
    try:
        plan = plan_pyramid(w, h, tile, opts)
    except BudgetError as e:
        assert "max_windows" in str(e) and "--" not in str(e)
        return
    assert plan.scales and 1 <= plan.windows <= max_windows
    assert max(plan.scales) <= max_upscale * (1 + 1e-9)
    assert plan.windows == count_windows(w, h, plan.scales, tile, opts.overlap)
    assert plan_scales(w, h, tile, opts) == plan.scales


def test_coarsening_is_one_common_factor() -> None:
    """A 4000x400 strip at tile 100 over three levels is too much for 100 windows: the levels are
    shrunk by one common factor (the least coarsening that fits) and the plan says so; a level that
    falls below 0.35 * 100 / 400 = 0.0875 (where a logo as tall as the image spans 35% of a tile)
    is dropped."""
    levels = [1.0, 0.4, 0.16]
    need = count_windows(4000, 400, levels, 100, 0.5)
    assert need > 100
    plan = fit_budget(4000, 400, 100, levels, 0.5, 100, exact=False)
    assert plan.windows <= 100 and "coarsened" in plan.note
    factors = [s / lv for s, lv in zip(plan.scales, levels, strict=False)]
    assert max(factors) < 1 and factors == pytest.approx([factors[0]] * len(factors))
    floor = SMALL_LOGO_FILL * 100 / 400
    assert len(plan.scales) == sum(lv * factors[0] >= floor for lv in levels) and min(plan.scales) >= floor
    # the largest factor that fits: a little less coarsening would not
    bigger = [s * 1.02 for s in plan.scales]
    assert count_windows(4000, 400, bigger, 100, 0.5) > 100
    # within the budget, a plan is the one asked for (each scale once, in order)
    same = fit_budget(4000, 400, 100, [1.0, 0.4, 1.0], 0.5, 10_000, exact=False)
    assert same.scales == [1.0, 0.4] and same.note == "" and same.windows == count_windows(4000, 400, [1.0, 0.4], 100)


def test_named_scales_over_the_budget_are_refused_not_changed() -> None:
    # scale 2 of a 1000x1000 image at tile 128, overlap 0.5 (stride 64): 2000 px -> 31 x 31 windows
    assert count_windows(1000, 1000, [2.0], 128) == 31 * 31
    opts = ScanOptions(scales=(2.0,), max_windows=31 * 31 - 1)
    with pytest.raises(BudgetError) as e:
        plan_pyramid(1000, 1000, 128, opts)
    assert "max_windows" in str(e.value) and "--" not in str(e.value)
    with pytest.raises(BudgetError):
        fit_budget(1000, 1000, 128, [2.0], 0.5, 100, exact=True)
    assert plan_scales(1000, 1000, 128, ScanOptions(scales=(2.0,), max_windows=31 * 31)) == [2.0]


def test_an_image_too_long_for_any_plan_is_refused() -> None:
    # 100000 x 1: even the coarsest useful level (a logo as tall as the image filling 35% of a tile)
    # needs thousands of windows
    with pytest.raises(BudgetError, match="max_windows"):
        plan_pyramid(100_000, 1, 128, ScanOptions(max_windows=10))


def _image(w: int, h: int) -> np.ndarray:
    """Each pixel tells where it is: R = x mod 256, G = y mod 256, B = 7."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs % 256, ys % 256, np.full_like(xs, 7)], axis=-1).astype(np.uint8)


def test_cut_tiles_returns_the_pixels_of_each_window() -> None:
    img = _image(120, 90)
    tiles = tiles_for_level(120, 90, 1.0, 64, 0.5)
    out = cut_tiles(img, tiles)
    assert out.shape == (len(tiles), 64, 64, 3) and out.dtype == np.uint8
    for t, px in zip(tiles, out, strict=True):
        np.testing.assert_array_equal(px, img[t.y : t.y + 64, t.x : t.x + 64])


def test_cut_tiles_pads_a_small_level_and_resizes_levels() -> None:
    img = _image(40, 30)
    (px,) = cut_tiles(img, [Tile(1.0, 0, 0, 64)], pad_value=255)
    np.testing.assert_array_equal(px[:30, :40], img)  # the level, at the top left
    assert (px[30:] == 255).all() and (px[:, 40:] == 255).all()  # padded at the right and bottom
    levels: dict[float, np.ndarray] = {}
    half = cut_tiles(img, [Tile(0.5, 0, 0, 32)], levels=levels)
    assert half.shape == (1, 32, 32, 3) and half.dtype == np.uint8
    assert levels[0.5].shape == (15, 20, 3)  # the level cached for the next batch: 40x30 at 0.5
    assert (half[0, :15, :20, 2] == 7).all() and (half[0, 15:] == 0).all()
    # a 2x level: pixel (x, y) of the level is near image pixel (x/2, y/2)
    (big,) = cut_tiles(img, [Tile(2.0, 20, 10, 16)])
    assert abs(int(big[8, 8, 0]) - (20 + 8) // 2) <= 1 and abs(int(big[8, 8, 1]) - (10 + 8) // 2) <= 1
    empty = cut_tiles(img, [])
    assert len(empty) == 0 and empty.dtype == np.uint8


def test_the_default_plan_of_a_photo_by_hand() -> None:
    """640x480 at tile 128: logos from 6% to 70% of the short side (28.8..336 px) need scales
    0.35*128/28.8 = 1.556 down to 0.85*128/336 = 0.324, three levels a ratio 2.19 apart."""
    scales = plan_scales(640, 480, 128, ScanOptions())
    s_hi, s_lo = SMALL_LOGO_FILL * 128 / (0.06 * 480), LARGE_LOGO_FILL * 128 / (0.7 * 480)
    n = math.ceil(math.log(s_hi / s_lo, OCTAVE_STEP)) + 1
    assert scales == pytest.approx([s_hi * (s_lo / s_hi) ** (i / (n - 1)) for i in range(n)])
    assert n == 3 and scales[0] == pytest.approx(1.5556, abs=1e-4)


def test_no_stage_test_loaded_tensorflow(request: pytest.FixtureRequest) -> None:
    """Run last of the stage tests (this file sorts last): when only they ran, nothing imported
    TensorFlow or Keras, not even lazily inside a function (the full suite loads it elsewhere)."""
    if not all(Path(item.path).name.startswith("test_stage_") for item in request.session.items):
        pytest.skip("other tests in this session may load TensorFlow")
    assert "tensorflow" not in sys.modules and "keras" not in sys.modules
