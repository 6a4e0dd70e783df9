"""The work budget per image: the pyramid never upscales beyond `max_upscale`, never plans more than
`max_windows` windows, and an image whose shape needs more is coarsened or refused, in both modes.

Before the budget (commit 9ca9ee9), an 8000x20 PNG planned 63,913 tiles (levels up to 37x), a 500x375
photo at 224 px 206 tiles at up to 3.5x, and a 3000x2 one tried an 11 GiB allocation.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.api import Detector
from detector.pipeline.options import ScanOptions
from detector.pipeline.plan import plan_pyramid, plan_scales
from detector.pipeline.tiling import BudgetError, count_windows, pyramid_tiles

#: default_scales / plan_scales as they were at 9ca9ee9: the demo's plans must not move.
BEFORE = {
    (640, 480, 128): [1.5555555555555556, 0.7097208632298361, 0.3238095238095238],
    (320, 240, 80): [1.9444444444444446, 0.8871510790372952, 0.40476190476190477],
    (1920, 1080, 128): [0.691358024691358, 0.315431494768816, 0.1439153439153439],
    (4000, 3000, 128): [0.24888888888888888, 0.11355533811677376, 0.051809523809523805],
    (1920, 1080, 299): [1.6149691358024691, 0.7368282573115312, 0.3361772486772487],
}


@pytest.mark.parametrize("key", sorted(BEFORE))
def test_plans_within_the_budget_are_unchanged(key: tuple[int, int, int]) -> None:
    w, h, tile = key
    assert plan_scales(w, h, tile, ScanOptions()) == pytest.approx(BEFORE[key], rel=1e-12)


def test_a_small_photo_is_not_enlarged_beyond_the_cap() -> None:
    """500x375 at 224 px: was 206 windows at up to 3.5x; now at most 2x and the windows its pixels need."""
    plan = plan_pyramid(500, 375, 224, ScanOptions())
    assert max(plan.scales) <= 2.0 and plan.windows <= 80 and not plan.note
    assert len(plan.scales) >= 2  # still a pyramid over the logo sizes that can matter
    assert max(plan_scales(500, 375, 224, ScanOptions(max_upscale=4))) > 3  # unless asked


@pytest.mark.parametrize("size,tile", [((8000, 20), 128), ((3000, 2), 80), ((20, 8000), 80), ((1, 1), 80)])
def test_extreme_aspect_ratios_are_bounded(size: tuple[int, int], tile: int) -> None:
    plan = plan_pyramid(*size, tile, ScanOptions())
    assert plan.windows <= 512 and max(plan.scales) <= 2.0
    assert plan.windows == len(pyramid_tiles(*size, plan.scales, tile))


def test_a_panorama_is_coarsened_to_fit_and_says_so() -> None:
    plan = plan_pyramid(8000, 400, 128, ScanOptions())
    assert plan.windows <= 512 and "coarsened" in plan.note and "max_windows 512" in plan.note
    assert len(plan.scales) == 3  # every level kept, each a little coarser


def test_what_cannot_fit_is_refused_with_the_reason() -> None:
    with pytest.raises(BudgetError, match="max_windows 512"):
        plan_scales(100_000, 1, 128, ScanOptions())
    with pytest.raises(BudgetError, match="scales 1,0.5 need .* windows .* raise max_windows"):
        plan_scales(4000, 3000, 128, ScanOptions(scales=(1.0, 0.5)))  # named scales are never changed
    assert plan_scales(4000, 3000, 128, ScanOptions(scales=(1.0, 0.5), max_windows=8192)) == [1.0, 0.5]


def test_only_max_logo_below_the_default_minimum_plans() -> None:
    """max_logo under 4% of the short side used to raise ValueError (a traceback in the CLI)."""
    plan = plan_pyramid(2000, 1500, 128, ScanOptions(max_logo=20))
    assert plan.scales and plan.windows <= 512


@settings(max_examples=300, deadline=None)
@given(
    w=st.integers(1, 200_000),
    h=st.integers(1, 200_000),
    tile=st.integers(75, 512),
    overlap=st.floats(0, 0.75),
    max_windows=st.integers(1, 8192),
    max_upscale=st.floats(0.05, 16),
    logo=st.none() | st.tuples(st.floats(1, 1e6), st.floats(1, 1e6)).map(sorted),
)
def test_every_plan_is_within_its_budget(w, h, tile, overlap, max_windows, max_upscale, logo) -> None:
    lo, hi = logo if logo else (None, None)
    opts = ScanOptions(overlap=overlap, max_windows=max_windows, max_upscale=max_upscale, min_logo=lo, max_logo=hi)
    try:
        plan = plan_pyramid(w, h, tile, opts)
    except BudgetError as e:
        assert "max_windows" in str(e)
        return
    assert 1 <= plan.windows <= max_windows and plan.scales
    assert max(plan.scales) <= max_upscale * (1 + 1e-9)
    assert count_windows(w, h, plan.scales, tile, overlap) == plan.windows
    if plan.windows <= 64:  # the arithmetic count is the real one
        assert len(pyramid_tiles(w, h, plan.scales, tile, overlap)) == plan.windows


@pytest.fixture(scope="module")
def detector(trained_model: Path) -> Detector:
    return Detector.load(trained_model)


@pytest.mark.parametrize("mode", ["tiles", "dense"])
@pytest.mark.parametrize("shape", [(20, 8000), (2, 3000), (8000, 20)])
def test_thin_images_scan_in_bounded_time_and_memory(detector: Detector, mode: str, shape: tuple[int, int]) -> None:
    """The issue's 8000x20 took 6 minutes and 3.4 GB; a 3000x2 one tried an 11 GiB allocation."""
    px = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        r = detector.scan(px, ScanOptions(mode=mode))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 60
    assert peak < 400 * 2**20, f"{peak / 2**20:.0f} MiB"
    assert r.timings_ms["tiles"] <= 512 and not r.errors


def test_over_the_budget_is_an_error_record_in_a_folder_scan(detector: Detector, tmp_path: Path) -> None:
    from PIL import Image

    from detector.results.folders import scan_many

    Image.new("RGB", (65535, 1), (200, 30, 30)).save(tmp_path / "strip.png")
    Image.new("RGB", (160, 120), (20, 90, 200)).save(tmp_path / "fine.png")
    got = []
    summary = scan_many(detector, sorted(tmp_path.glob("*.png")), lambda r, px: got.append(r), progress=False)
    by = {Path(r.path).name: r for r in got}
    assert summary.errors == 1 and not by["fine.png"].errors
    assert "max_windows" in by["strip.png"].errors[0] and by["strip.png"].sha256
