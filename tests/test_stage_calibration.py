"""Stage unit tests, calibration (detector/pipeline/calibration.py): the whole `BoxCalibration` as
`detect calibrate` fits it and the scanner applies it. No model.

tests/test_boxfit.py checks the parts (pair_boxes, fit_correction on a fill-dependent distortion,
correct_boxes' clipping, the scorer's ranking); here: `fit_box_calibration` end to end on boxes that
are all 1.5x too large, `apply`, and the trip through model.json (`as_dict` / `from_dict`).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from detector.geometry import Box, Detection, iou
from detector.pipeline.calibration import (
    MIN_PAIRS,
    BoxCalibration,
    BoxScorer,
    fit_box_calibration,
)

TILE = 128
SIZE = (1000, 1000)
GROW = 1.5


def _scenes(seed: int, n: int, false_alarms: bool = True) -> tuple[list[list[Detection]], list[list[Box]]]:
    """Per image one true box (sides 30..200 px, any aspect) and its CAM box, the same centre with both
    sides 1.5x; every other image a false alarm far from the logo."""
    rng = np.random.default_rng(seed)
    preds, truth = [], []
    for i in range(n):
        w, h = float(rng.uniform(30, 200)), float(rng.uniform(30, 200))
        x, y = float(rng.uniform(150, 550)), float(rng.uniform(150, 550))
        cx, cy = x + w / 2, y + h / 2
        scale = float(rng.choice([0.5, 1.0, 2.0]))
        d = Detection("logo", 0.9, cx - GROW * w / 2, cy - GROW * h / 2, cx + GROW * w / 2, cy + GROW * h / 2, scale)
        dets = [d]
        if false_alarms and i % 2:
            dets.append(Detection("logo", float(rng.uniform(0.6, 0.95)), 900, 20, 960, 80, 1.0))
        preds.append(dets)
        truth.append([Box("logo", x, y, x + w, y + h)])
    return preds, truth


def test_a_fit_on_boxes_too_large_shrinks_new_boxes_onto_the_truth() -> None:
    preds, truth = _scenes(0, 24)
    cal = fit_box_calibration(preds, truth, [SIZE] * len(preds), TILE)
    corr = cal.correction
    assert corr is not None and corr.pairs == 24  # the false alarms are not paired
    # every box is 1.5x at every fill: log(true / box) = log(1/1.5), whatever the fill
    assert corr.log_w[0] == pytest.approx(-math.log(GROW), abs=1e-6) and corr.log_w[1] == pytest.approx(0, abs=1e-6)
    assert corr.log_h[0] == pytest.approx(-math.log(GROW), abs=1e-6) and corr.log_h[1] == pytest.approx(0, abs=1e-6)
    assert (corr.dx, corr.dy) == pytest.approx((0, 0), abs=1e-9)

    new_preds, new_truth = _scenes(1, 10)
    for dets, gts in zip(new_preds, new_truth, strict=True):
        g = gts[0]
        box = dets[0]
        assert iou(box, g) == pytest.approx(1 / GROW**2)  # before: the true box inside, 1/2.25 of it
        out = cal.apply(dets, TILE, *SIZE)
        (fixed,) = [d for d in out if iou(d, g) > 0]
        assert iou(fixed, g) > 0.99
        assert fixed.x2 - fixed.x1 == pytest.approx(g.width, rel=1e-4)
        assert fixed.y2 - fixed.y1 == pytest.approx(g.height, rel=1e-4)
        assert (fixed.label, fixed.scale) == (box.label, box.scale)


def test_the_fitted_scorer_ranks_corrected_boxes_above_false_alarms() -> None:
    preds, truth = _scenes(2, 24)
    cal = fit_box_calibration(preds, truth, [SIZE] * len(preds), TILE)
    assert cal.scorer is not None and set(cal.scorer.weights) == {"logo"}  # 24 right and 12 wrong boxes
    right, wrong = [], []
    for dets, gts in zip(*_scenes(3, 12), strict=True):
        out = cal.apply(dets, TILE, *SIZE)
        assert [d.score for d in out] == sorted((d.score for d in out), reverse=True)
        for d in out:
            (right if iou(d, gts[0]) > 0.5 else wrong).append(d.score)
    assert len(right) == 12 and len(wrong) == 6
    assert min(right) > max(wrong)  # the false alarms' window scores (up to 0.95) were above 0.9


def test_round_trip_through_model_json_gives_the_same_boxes() -> None:
    preds, truth = _scenes(4, 24)
    cal = fit_box_calibration(preds, truth, [SIZE] * len(preds), TILE)
    stored = json.loads(json.dumps(cal.as_dict()))
    again = BoxCalibration.from_dict(stored)
    assert again.as_dict() == cal.as_dict()
    for dets, _ in zip(*_scenes(5, 8), strict=True):
        a = sorted(cal.apply(dets, TILE, *SIZE), key=lambda d: d.x1)
        b = sorted(again.apply(dets, TILE, *SIZE), key=lambda d: d.x1)
        assert len(a) == len(b) == len(dets)
        for p, q in zip(a, b, strict=True):
            assert (p.x1, p.y1, p.x2, p.y2) == pytest.approx((q.x1, q.y1, q.x2, q.y2), abs=0.01)  # 5 decimals kept
            assert p.score == pytest.approx(q.score, abs=1e-3)


def test_too_few_pairs_give_no_correction() -> None:
    preds, truth = _scenes(6, MIN_PAIRS - 1, false_alarms=False)
    cal = fit_box_calibration(preds, truth, [SIZE] * len(preds), TILE)
    assert cal.correction is None and cal.scorer is None  # and nothing wrong to learn a scorer from
    assert cal.as_dict() == {"correction": None, "scorer": None}
    assert BoxCalibration.from_dict(cal.as_dict()) == cal
    for dets in preds:
        assert cal.apply(dets, TILE, *SIZE) == dets
    # boxes of another label are no pairs either
    other = [[replace(gts[0], label="brand")] for gts in _scenes(7, 12)[1]]
    assert fit_box_calibration(_scenes(7, 12)[0], other, [SIZE] * 12, TILE).correction is None


def test_a_scorer_of_other_features_keeps_the_window_scores() -> None:
    preds, truth = _scenes(8, 24)
    d = fit_box_calibration(preds, truth, [SIZE] * len(preds), TILE).as_dict()
    d["scorer"]["features"] = d["scorer"]["features"][:-1]  # a model.json from another version
    cal = BoxCalibration.from_dict(d)
    assert cal.scorer == BoxScorer({}) and cal.correction is not None
    out = cal.apply(preds[1], TILE, *SIZE)
    assert sorted(x.score for x in out) == sorted(x.score for x in preds[1])  # sizes corrected, scores kept
