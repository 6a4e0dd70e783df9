"""Stage unit tests, merge (detector/pipeline/merge.py): boxes of all pyramid levels -> one box per logo.

Hand-made detections; every expected box is worked out from the method's definition. No model.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.geometry import Detection, iou
from detector.pipeline.merge import MERGE_METHODS, merge_levels, suppress_contained

METHODS = sorted(MERGE_METHODS)

# One logo seen at two levels: A (coarse level, better score), B (finer level), IoU 90*90/(2*100*100-90*90) = 0.68.
A = Detection("acme", 0.9, 0, 0, 100, 100, 1.0)
B = Detection("acme", 0.6, 10, 10, 110, 110, 2.0)


def _same(got: list[Detection], want: list[Detection]) -> None:
    """The same boxes in the same order (corners to float precision: fuse divides by its weights)."""
    assert [(d.label, d.score, d.scale) for d in got] == [(d.label, d.score, d.scale) for d in want]
    for g, w in zip(got, want, strict=True):
        assert (g.x1, g.y1, g.x2, g.y2) == pytest.approx((w.x1, w.y1, w.x2, w.y2), abs=1e-6)


def test_the_registry_holds_the_three_methods() -> None:
    assert set(MERGE_METHODS) == {"nms", "fuse", "finest"}
    for name in METHODS:
        assert merge_levels([A, B], name) == MERGE_METHODS[name]([A, B], 0.3, 0.7)
    with pytest.raises(KeyError):
        merge_levels([A], "average")


@pytest.mark.parametrize("method", METHODS)
def test_overlapping_boxes_of_one_label_become_one(method: str) -> None:
    assert iou(A, B) == pytest.approx(8100 / 11900)
    (one,) = merge_levels([B, A], method)
    assert one.label == "acme"
    assert iou(one, A) > 0.6 and iou(one, B) > 0.6  # somewhere between the two, whichever it is


@pytest.mark.parametrize("method", METHODS)
def test_boxes_of_different_labels_never_merge(method: str) -> None:
    same_place = Detection("zeta", 0.8, 0, 0, 100, 100, 1.0)
    out = merge_levels([same_place, A], method)
    _same(out, [A, same_place])  # each label's box as it was, best first


@pytest.mark.parametrize("method", METHODS)
def test_disjoint_boxes_stay_apart(method: str) -> None:
    far = Detection("acme", 0.7, 300, 300, 350, 350, 2.0)
    # touching, not overlapping: IoU 0 and containment 0
    touching = Detection("acme", 0.5, 100, 0, 200, 100, 1.0)
    out = merge_levels([touching, A, far], method)
    _same(out, [A, far, touching])  # unchanged (a cluster of one is its box), best first


@pytest.mark.parametrize("method", METHODS)
def test_a_part_inside_a_better_box_joins_it(method: str) -> None:
    # IoU 20*20/100*100 = 0.04, far under iou_min, but the part lies wholly inside A
    part = Detection("acme", 0.5, 40, 40, 60, 60, 2.0)
    out = merge_levels([part, A], method, iou_min=0.3, share=0.7)
    assert len(out) == 1
    # ... and stays apart when containment does not count
    assert len(merge_levels([part, A], method, iou_min=0.3, share=1.01)) == 2


def test_nms_keeps_the_best_scoring_box() -> None:
    assert merge_levels([B, A], "nms") == [A]


def test_finest_keeps_the_finest_level_box() -> None:
    assert merge_levels([A, B], "finest") == [B]
    # among boxes of one level, the best score leads
    b2 = Detection("acme", 0.8, 12, 12, 108, 108, 2.0)
    assert merge_levels([A, B, b2], "finest") == [b2]


def test_fuse_is_the_score_times_scale_weighted_mean_of_corners() -> None:
    (f,) = merge_levels([A, B], "fuse")
    wa, wb = 0.9 * 1.0, 0.6 * 2.0  # weights score x scale: 0.9 and 1.2
    assert f.x1 == pytest.approx((0 * wa + 10 * wb) / (wa + wb))  # 12 / 2.1 = 5.714
    assert f.y1 == pytest.approx((0 * wa + 10 * wb) / (wa + wb))
    assert f.x2 == pytest.approx((100 * wa + 110 * wb) / (wa + wb))  # 222 / 2.1 = 105.714
    assert f.y2 == pytest.approx((100 * wa + 110 * wb) / (wa + wb))
    assert (f.label, f.score, f.scale) == ("acme", 0.9, 1.0)  # the best box's score and level
    # three boxes: weights 1*1, 1*1, 0.5*4 = 1, 1, 2 -> x1 = (0 + 20 + 2*10) / 4 = 10
    c = [
        Detection("k", 1.0, 0, 0, 100, 100, 1.0),
        Detection("k", 1.0, 20, 0, 120, 100, 1.0),
        Detection("k", 0.5, 10, 0, 110, 100, 4.0),
    ]
    (g,) = merge_levels(c, "fuse")
    assert (g.x1, g.x2, g.y1, g.y2) == pytest.approx((10, 110, 0, 100))


def test_suppress_contained_drops_a_box_inside_a_better_one() -> None:
    big = Detection("acme", 0.9, 0, 0, 100, 100, 1.0)
    inside = Detection("acme", 0.5, 10, 10, 30, 30, 2.0)  # containment 1
    mostly = Detection("acme", 0.5, 90, 0, 110, 20, 2.0)  # half inside: 200/400
    assert suppress_contained([inside, big]) == [big]
    assert suppress_contained([mostly, big], share=0.7) == [big, mostly]
    assert suppress_contained([mostly, big], share=0.5) == [big]
    # a worse box around a better one is the same logo over-sized by a coarse level: it goes, as the
    # best box of each cluster is what nms keeps (a logo cut by tile borders gave two boxes before)
    better_inside = Detection("acme", 0.95, 10, 10, 30, 30, 2.0)
    assert suppress_contained([big, better_inside]) == [better_inside]
    # another label's box is never a part
    other = Detection("zeta", 0.5, 10, 10, 30, 30, 2.0)
    assert suppress_contained([other, big]) == [big, other]


# -- properties over random boxes -----------------------------------------------------------------------


@st.composite
def detections(draw: st.DrawFn, labels: str = "ab") -> list[Detection]:
    n = draw(st.integers(0, 10))
    out = []
    for i in range(n):
        x, y = draw(st.integers(0, 300)), draw(st.integers(0, 300))
        w, h = draw(st.integers(4, 120)), draw(st.integers(4, 120))
        scale = draw(st.sampled_from([0.25, 0.5, 1.0, 2.0]))
        out.append(Detection(draw(st.sampled_from(labels)), 0.95 - 0.03 * i, x, y, x + w, y + h, scale))
    return out


def _key(d: Detection) -> tuple:
    return (d.label, round(d.score, 9), round(d.x1, 6), round(d.y1, 6), round(d.x2, 6), round(d.y2, 6), d.scale)


@settings(max_examples=40, deadline=None)
@given(dets=detections(), method=st.sampled_from(METHODS))
def test_labels_are_merged_independently(dets: list[Detection], method: str) -> None:
    out = merge_levels(dets, method)
    per_label = [d for lb in "ab" for d in merge_levels([d for d in dets if d.label == lb], method)]
    assert sorted(map(_key, out)) == sorted(map(_key, per_label))
    assert [d.score for d in out] == sorted((d.score for d in out), reverse=True)
    assert len(out) <= len(dets)


@settings(max_examples=40, deadline=None)
@given(dets=detections(), method=st.sampled_from(METHODS))
def test_every_merged_box_comes_from_its_label_boxes(dets: list[Detection], method: str) -> None:
    for d in merge_levels(dets, method):
        mine = [k for k in dets if k.label == d.label]
        if method == "fuse":  # a weighted mean of corners lies within their range
            assert min(k.x1 for k in mine) - 1e-6 <= d.x1 and d.x2 <= max(k.x2 for k in mine) + 1e-6
            assert min(k.y1 for k in mine) - 1e-6 <= d.y1 and d.y2 <= max(k.y2 for k in mine) + 1e-6
            assert d.score in {k.score for k in mine}
        else:  # nms and finest keep one of the given boxes
            assert d in dets
