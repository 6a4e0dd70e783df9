"""Box-size calibration: the fit recovers a known distortion of CAM boxes and undoes it."""

from __future__ import annotations

import numpy as np

from detector.geometry import Box, Detection, box_iou
from detector.pipeline.calibration import (
    BoxCorrection,
    BoxScorer,
    box_hits,
    correct_boxes,
    fit_correction,
    fit_scorer,
    pair_boxes,
    rescore_boxes,
)

TILE = 128


def _distorted(rng: np.random.Generator, n: int) -> tuple[list[list[Detection]], list[list[tuple]]]:
    """True boxes of many sizes, and CAM-like boxes: small logos over-sized, big ones cut to their core
    (more so in height), centres a little high; plus a false alarm per image far from any logo."""
    preds, truth = [], []
    for _ in range(n):
        side = float(rng.uniform(20, 300))
        x, y = float(rng.uniform(0, 300)), float(rng.uniform(0, 200))
        scale = float(rng.choice([s for s in (0.32, 0.71, 1.56) if 0.12 <= side * s / TILE <= 1.15]))
        fill = side * scale / TILE
        kw = np.exp(-0.1 - 0.4 * np.log(fill) + rng.normal(0, 0.03))  # predicted side = true side / kw
        kh = np.exp(0.35 - 0.3 * np.log(fill) + rng.normal(0, 0.03))
        pw, ph = side / kw, side / kh
        cx, cy = x + side / 2, y + side / 2 - 0.08 * ph
        d = Detection("logo", 0.9, cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2, scale)
        far = Detection("logo", 0.5, 900, 900, 940, 940, 1.0)
        preds.append([d, far])
        truth.append([Box("logo", x, y, x + side, y + side)])
    return preds, truth


def test_fit_recovers_the_distortion_and_correcting_lifts_iou() -> None:
    rng = np.random.default_rng(0)
    preds, truth = _distorted(rng, 80)
    rows = pair_boxes(preds, truth, TILE)
    assert 70 <= len(rows) <= 80  # the false alarms are not paired (nor a box off by IoU < 0.2)
    corr = fit_correction(rows)
    assert corr is not None and corr.pairs == len(rows)
    # the model's true fill is the fill of the *true* box, so the fit is near, not equal to, the generator
    assert abs(corr.dy - 0.08) < 0.03 and abs(corr.dx) < 0.02
    test_preds, test_truth = _distorted(np.random.default_rng(1), 40)
    before, after = [], []
    for dets, gts in zip(test_preds, test_truth, strict=True):
        g = gts[0]
        fixed = correct_boxes(dets[:1], corr, TILE, 2000, 2000)
        before.append(box_iou(g, (dets[0].x1, dets[0].y1, dets[0].x2, dets[0].y2)))
        after.append(box_iou(g, (fixed[0].x1, fixed[0].y1, fixed[0].x2, fixed[0].y2)))
    assert np.median(before) < 0.6 and np.median(after) > 0.85


def test_round_trip_clipping_and_too_few_pairs() -> None:
    corr = BoxCorrection((0.5, 0.0), (0.5, 0.0), 0.0, 0.0, 20)
    assert BoxCorrection.from_dict(corr.as_dict()) == corr
    d = Detection("logo", 0.8, 0, 0, 50, 40, 1.0)
    (out,) = correct_boxes([d], corr, TILE, 60, 60)
    assert (out.x1, out.y1) == (0.0, 0.0) and out.x2 == 60.0 and out.y2 <= 60.0  # grown, kept inside
    assert correct_boxes([d], None, TILE, 60, 60) == [d]
    rows = pair_boxes([[d]], [[Box("logo", 0, 0, 50, 40)]], TILE)
    assert fit_correction(rows) is None  # one pair is not a fit
    assert len(pair_boxes([[d]], [[Box("other", 0, 0, 50, 40)]], TILE)) == 0  # labels must match


def _fragmented(rng: np.random.Generator, n: int) -> tuple[list[list[Detection]], list[list[tuple]]]:
    """Per image a right box on the logo and a fragment of it (a thin strip inside it), both scored
    ~1.0 by their windows as a trained classifier does, and sometimes a weak false alarm elsewhere."""
    preds, truth = [], []
    for _ in range(n):
        side = float(rng.uniform(40, 120))
        x, y = float(rng.uniform(0, 200)), float(rng.uniform(0, 100))
        right = Detection("logo", 0.999, x + 2, y + 1, x + side - 1, y + side - 2, 0.71)
        strip = Detection("logo", 0.999, x + side * 0.1, y + side * 0.4, x + side * 0.9, y + side * 0.65, 0.71)
        dets = [strip, right] if rng.random() < 0.5 else [right, strip]
        if rng.random() < 0.5:
            dets.append(Detection("logo", float(rng.uniform(0.5, 0.9)), 400, 300, 430, 330, 1.56))
        preds.append(dets)
        truth.append([Box("logo", x, y, x + side, y + side)])
    return preds, truth


def test_scorer_ranks_right_boxes_above_fragments_and_false_alarms() -> None:
    preds, truth = _fragmented(np.random.default_rng(2), 60)
    scorer = fit_scorer(preds, truth, TILE)
    assert scorer is not None and set(scorer.weights) == {"logo"}
    assert BoxScorer.from_dict(scorer.as_dict()).as_dict() == scorer.as_dict()
    test_preds, test_truth = _fragmented(np.random.default_rng(3), 30)
    right, wrong = [], []
    for dets, gts in zip(test_preds, test_truth, strict=True):
        scored = rescore_boxes(dets, scorer, TILE)
        assert [d.score for d in scored] == sorted((d.score for d in scored), reverse=True)
        for d, hit in zip(scored, box_hits(scored, gts), strict=True):
            (right if hit else wrong).append(d.score)
    assert len(right) == 30 and len(wrong) >= 30
    assert min(right) > max(wrong)  # the window scores (all 0.999) could not rank them at all
    assert rescore_boxes(test_preds[0], None, TILE) == test_preds[0]
    assert fit_scorer([[d] for d in preds[0][:1]], [truth[0]], TILE) is None  # nothing wrong to learn from
