"""Stage unit tests, geometry (detector/geometry.py): the one IoU, containment and NMS. No model.

Every expected number is worked out by hand from the boxes' corners.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.geometry import (
    Box,
    Detection,
    Detections,
    area,
    box_iou,
    containment,
    corners,
    intersection,
    iou,
    nms,
)


@dataclass
class _Box:  # any object with x1..y2 is a box
    x1: float
    y1: float
    x2: float
    y2: float


def _det(label: str, score: float, x1: float, y1: float, x2: float, y2: float, scale: float = 1.0) -> Detection:
    return Detection(label, score, x1, y1, x2, y2, scale)


# -- corners, intersection, IoU, containment by hand ----------------------------------------------------


def test_corners_of_objects_and_tuples() -> None:
    assert corners((1, 2, 3, 4)) == (1.0, 2.0, 3.0, 4.0)
    assert all(isinstance(v, float) for v in corners([1, 2, 3, 4]))
    assert corners(np.array([5, 6, 7, 8])) == (5.0, 6.0, 7.0, 8.0)
    assert corners(_Box(1.5, 2.5, 3.5, 4.5)) == (1.5, 2.5, 3.5, 4.5)
    assert corners(_det("a", 0.5, 10, 20, 30, 40)) == (10, 20, 30, 40)
    assert corners(Box("logo", 1, 2, 3, 4)) == (1, 2, 3, 4) and Box("logo", 1, 2, 4, 7).width == 3
    with pytest.raises(ValueError):
        corners((1, 2, 3))


def test_intersection_iou_and_containment_by_hand() -> None:
    a, b = (0, 0, 10, 10), (5, 5, 15, 15)  # a 5x5 corner shared, each box 100
    assert intersection(a, b) == 25
    assert iou(a, b) == pytest.approx(25 / (100 + 100 - 25))
    assert box_iou is iou
    # objects and tuples mix
    assert iou(_Box(0, 0, 10, 10), _det("x", 0.1, 5, 5, 15, 15)) == pytest.approx(25 / 175)
    # touching edges share no area
    assert intersection((0, 0, 10, 10), (10, 0, 20, 10)) == 0 and iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0
    # disjoint: no negative areas leak in (both overlaps negative would multiply to a positive)
    assert intersection((0, 0, 1, 1), (5, 5, 6, 6)) == 0
    # a 2x2 box inside a 10x10 one: fully inside it, and covering 4% of it
    inner, outer = (2, 2, 4, 4), (0, 0, 10, 10)
    assert containment(inner, outer) == 1.0
    assert containment(outer, inner) == pytest.approx(4 / 100)
    assert iou(inner, outer) == pytest.approx(4 / 100)
    # half of a 10x4 box sticks out of the other
    assert containment((5, 0, 15, 4), (0, 0, 10, 10)) == pytest.approx(0.5)


def test_degenerate_boxes() -> None:
    point = (3, 3, 3, 3)
    assert area(point) == 0 and iou(point, point) == 0.0  # no area: no IoU, and no division by zero
    assert area((5, 5, 1, 1)) == 0  # inverted corners have no area
    assert containment(point, (0, 0, 10, 10)) == 0.0


# -- properties -----------------------------------------------------------------------------------------

coord = st.integers(-200, 200)


@st.composite
def boxes(draw: st.DrawFn, min_side: int = 1) -> tuple[float, float, float, float]:
    x, y = draw(coord), draw(coord)
    w, h = draw(st.integers(min_side, 150)), draw(st.integers(min_side, 150))
    frac = draw(st.sampled_from([0.0, 0.25, 0.5]))  # some non-integer corners
    return (x + frac, y, x + w, y + h + frac)


@settings(max_examples=80, deadline=None)
@given(a=boxes(), b=boxes())
def test_iou_is_symmetric_bounded_and_one_with_itself(a, b) -> None:
    v = iou(a, b)
    assert v == pytest.approx(iou(b, a), abs=1e-12)
    assert 0.0 <= v <= 1.0
    assert iou(a, a) == pytest.approx(1.0)
    assert 0.0 <= containment(a, b) <= 1.0 + 1e-12
    assert intersection(a, b) <= min(area(a), area(b)) + 1e-9
    # IoU 1 only for the same box; a box fully inside another has IoU = the ratio of the areas
    if containment(a, b) == 1.0:
        assert v == pytest.approx(area(a) / area(b))


@settings(max_examples=30, deadline=None)
@given(a=st.lists(boxes(min_side=0), min_size=0, max_size=8), b=st.lists(boxes(min_side=0), min_size=1, max_size=8))
def test_iou_matrix_is_pairwise_iou(a, b) -> None:
    da = Detections.from_list([_det("x", 0.5, *box) for box in a])
    db = Detections.from_list([_det("y", 0.5, *box) for box in b])
    want = np.array([[iou(p, q) for q in b] for p in a]).reshape(len(a), len(b))
    got = da.iou_matrix(db)
    assert got.shape == (len(a), len(b))
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(da.iou_matrix(np.array(b, np.float64)), want, atol=1e-12)  # an (M, 4) array too


# -- Detections -----------------------------------------------------------------------------------------

DETS = [
    _det("acme", 0.9, 0, 0, 10, 10, 1.0),
    _det("acme", 0.5, 1, 1, 11, 11, 0.5),
    _det("zeta", 0.7, 100.5, 50, 140, 90.25, 2.0),
]


def test_from_list_to_list_round_trip() -> None:
    d = Detections.from_list(DETS)
    assert len(d) == 3 and d.xyxy.shape == (3, 4)
    assert d.to_list() == DETS
    assert list(d) == DETS
    assert d.label.tolist() == ["acme", "acme", "zeta"] and d.scale.tolist() == [1.0, 0.5, 2.0]
    empty = Detections.from_list([])
    assert len(empty) == 0 and empty.to_list() == [] and empty.xyxy.shape == (0, 4)


def test_getitem_by_mask_index_and_slice() -> None:
    d = Detections.from_list(DETS)
    assert d[d.confidence > 0.6].to_list() == [DETS[0], DETS[2]]
    assert d[d.label == "zeta"].to_list() == [DETS[2]]
    assert d[1].to_list() == [DETS[1]] and d[np.int64(2)].to_list() == [DETS[2]]  # an int keeps the arrays 2-D
    assert d[np.array([2, 0])].to_list() == [DETS[2], DETS[0]]
    assert d[1:].to_list() == DETS[1:]
    assert len(d[np.zeros(3, bool)]) == 0


def test_merge_concatenates_and_skips_empties() -> None:
    a, b = Detections.from_list(DETS[:1]), Detections.from_list(DETS[1:])
    assert Detections.merge([a, Detections(), b]).to_list() == DETS
    assert len(Detections.merge([])) == 0 and len(Detections.merge([Detections()])) == 0


def test_with_nms_keeps_the_best_per_label() -> None:
    # two acme boxes with IoU 81/119 = 0.68, and a zeta box on top of the first one
    dets = [
        _det("acme", 0.6, 1, 1, 11, 11),
        _det("acme", 0.9, 0, 0, 10, 10),
        _det("zeta", 0.3, 0, 0, 10, 10),
        _det("acme", 0.4, 50, 50, 60, 60),  # far from both: kept
    ]
    kept = Detections.from_list(dets).with_nms(0.45).to_list()
    assert kept == [dets[1], dets[3], dets[2]]  # best first; labels never suppress each other
    # the same pair below the threshold is kept whole
    assert len(Detections.from_list(dets[:2]).with_nms(0.7)) == 2
    assert nms(dets, 0.45) == kept
    assert nms([]) == [] and len(Detections().with_nms()) == 0


@settings(max_examples=50, deadline=None)
@given(
    items=st.lists(st.tuples(st.sampled_from("ab"), boxes(min_side=2)), min_size=1, max_size=12),
    threshold=st.sampled_from([0.3, 0.45, 0.6]),
)
def test_nms_keeps_no_overlapping_pair_and_drops_only_under_a_better_box(items, threshold) -> None:
    dets = [_det(lb, 0.99 - 0.05 * i, *box) for i, (lb, box) in enumerate(items)]  # distinct scores
    pairs = [(p, q) for p in dets for q in dets if p is not q and p.label == q.label]
    if any(abs(iou(p, q) - threshold) < 1e-6 for p, q in pairs):
        return  # on the threshold: OpenCV's float IoU may round either way
    kept = nms(dets, threshold)
    assert [k.score for k in kept] == sorted((k.score for k in kept), reverse=True)
    assert set(kept) <= set(dets)
    for p in kept:
        assert not any(q is not p and q.label == p.label and iou(p, q) > threshold for q in kept)
    for d in set(dets) - set(kept):  # greedy NMS: a dropped box overlaps a kept, better box of its label
        assert any(k.label == d.label and k.score > d.score and iou(k, d) > threshold for k in kept)


def test_nms_keeps_a_lone_box_of_score_zero() -> None:
    assert len(nms([_det("a", 0.0, 0, 0, 10, 10)])) == 1
