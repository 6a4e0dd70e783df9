"""Dense scanning (one backbone pass per level) against the sliding window, with the trained test model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.api import Detector
from detector.backends import open_backend
from detector.data.boxes import read_box_dataset
from detector.errors import DetectorError
from detector.geometry import box_iou
from detector.images import load_image
from detector.pipeline.dense import dense_evidence
from detector.pipeline.evidence import tile_evidence
from detector.pipeline.options import ScanOptions
from detector.pipeline.tiling import cut_tiles, default_scales


@pytest.fixture(scope="module")
def keras_detector(trained_model: Path) -> Detector:
    return Detector.load(trained_model)


def _scenes(scene_data: Path, n: int) -> list[tuple[np.ndarray, int]]:
    ds = read_box_dataset(scene_data / "scenes")
    recs = [r for r in ds.images if r.boxes][: n // 2] + [r for r in ds.images if not r.boxes][: n - n // 2]
    return [(load_image(ds.image_path(r)).pixels, len(r.boxes)) for r in recs]


def test_dense_windows_score_like_cut_windows(keras_detector: Detector, scene_data: Path) -> None:
    """Each dense window's probability is close to the same window cut out and classified alone."""
    backend = keras_detector.backend
    ds = read_box_dataset(scene_data / "scenes")
    rec = max(ds.images, key=lambda r: sum((b.x2 - b.x1) * (b.y2 - b.y1) for b in r.boxes))  # logos to find
    px = load_image(ds.image_path(rec)).pixels
    scales = default_scales(px.shape[1], px.shape[0], backend.meta.input_size)
    tiles, probs, cams, _ = dense_evidence(backend, px, scales, overlap=0.5)
    alone = backend.predict(cut_tiles(px, tiles))
    assert cams.shape[1:] == alone.cams.shape[1:]
    assert alone.probs[:, 1].std() > 0.1  # a trained model: windows differ
    # Cells by a window's border see context beyond it, which matters most for this tiny 7x7-cell model.
    corr = np.corrcoef(probs[:, 1], alone.probs[:, 1])[0, 1]
    same = np.mean((probs[:, 1] >= 0.5) == (alone.probs[:, 1] >= 0.5))
    print(f"window probability correlation {corr:.3f}, same verdict {same:.3f} over {len(tiles)} windows")
    assert corr > 0.8 and same >= 0.85


def _hits(result, truth: list) -> int:
    """True boxes a predicted box overlaps well (IoU >= 0.3): how much of the truth a mode finds."""
    boxes = [(b.x1, b.y1, b.x2, b.y2) for b in result.boxes]
    return sum(any(box_iou((t.x1, t.y1, t.x2, t.y2), b) >= 0.3 for b in boxes) for t in truth)


def test_dense_and_tiles_agree_on_verdicts_and_find_the_same_logos(calibrated_model: Path, scene_data: Path) -> None:
    """Judged at calibrated image thresholds, as a user scans: the uncalibrated model's image threshold is
    its tile threshold, which an image's best of many windows crosses easily, so verdicts near it flip
    with the small score shifts dense mode brings (border cells see context beyond their window)."""
    detector = Detector.load(calibrated_model)
    ds = read_box_dataset(scene_data / "scenes")
    recs = [r for r in ds.images if r.boxes][:8] + [r for r in ds.images if not r.boxes][:8]
    agree, hits_tiles, hits_dense = 0, 0, 0
    for rec in recs:
        px = load_image(ds.image_path(rec)).pixels
        a = detector.scan(px, ScanOptions(mode="tiles"))
        b = detector.scan(px, ScanOptions(mode="dense"))
        agree += a.has_logo == b.has_logo
        hits_tiles += _hits(a, rec.boxes)
        hits_dense += _hits(b, rec.boxes)
    print(f"verdicts agree on {agree}/{len(recs)}; true boxes found: tiles {hits_tiles}, dense {hits_dense}")
    assert agree >= len(recs) - 2
    assert hits_tiles >= 4 and hits_dense >= 0.5 * hits_tiles  # box AP of both modes: benchmarks/speed.py


def test_blocks_bound_memory_and_keep_the_answer(keras_detector: Detector) -> None:
    """A level split into blocks gives the same windows and nearly the same scores as one pass."""
    rng = np.random.default_rng(0)
    px = cv2.resize(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), (403, 301), interpolation=cv2.INTER_NEAREST)
    backend = keras_detector.backend
    whole = dense_evidence(backend, px, [1.0], 0.5, block=4096)
    split = dense_evidence(backend, px, [1.0], 0.5, block=176)
    assert whole[0] == split[0]  # the same windows
    print(f"max |dprob| split vs whole {np.abs(split[1] - whole[1]).max():.4f}")
    np.testing.assert_allclose(split[1], whole[1], atol=0.005)


@pytest.mark.parametrize("shape", [(61, 45), (97, 203), (240, 321)])
def test_odd_and_tiny_images(keras_detector: Detector, shape: tuple[int, int]) -> None:
    px = np.random.default_rng(1).integers(0, 255, shape + (3,), dtype=np.uint8)
    ev = tile_evidence(keras_detector.backend, px, ScanOptions(mode="dense"))
    assert len(ev.tiles) == len(ev.probs) == len(ev.cams) > 0
    np.testing.assert_allclose(ev.probs.sum(axis=1), 1.0, atol=1e-5)
    r = keras_detector.scan(px, ScanOptions(mode="dense"))
    assert r.width == shape[1] and r.height == shape[0] and not r.errors


def test_dense_runs_on_onnx_like_keras(keras_detector: Detector, exported_onnx, scene_data: Path) -> None:
    onnx_det = Detector.load(exported_onnx.path)
    for px, _ in _scenes(scene_data, 4):
        a = keras_detector.scan(px, ScanOptions(mode="dense"))
        b = onnx_det.scan(px, ScanOptions(mode="dense"))
        assert a.has_logo == b.has_logo and len(a.boxes) == len(b.boxes)
        assert abs(a.scores["demo-logo"] - b.scores["demo-logo"]) < 1e-3


def test_unknown_mode_is_a_clear_error(trained_model: Path) -> None:
    with pytest.raises(DetectorError, match="mode must be one of"):
        Detector(open_backend(trained_model), ScanOptions(mode="sparse"))


def test_block_side_follows_the_memory_budget() -> None:
    """A full-HD level runs whole (no margins computed twice); a 12 Mpx level is cut to the budget."""
    from detector.pipeline.dense import BLOCK_PIXELS, block_side

    assert block_side(1920, 1080) == 1920
    side = block_side(4000, 3000)
    assert side < 4000 and side * side <= BLOCK_PIXELS
    assert block_side(300, 200, budget_pixels=100 * 100) == 100
