"""Boxes of all pyramid levels -> one box per logo. The methods are a registry: a new one is one
function and one line in `MERGE_METHODS`.

- fuse: cluster overlapping boxes (IoU or containment), average their corners weighted by score x
  level scale (weighted box fusion, with finer levels trusted more: they have more map pixels per
  logo pixel). Coarse levels over-size a small logo, fine levels see only the core of a big one;
  the weighted mean sits closer than either;
- nms: keep the best-scoring box of each cluster (OpenCV NMS, then containment suppression);
- finest: keep the box of the finest level in each cluster (the most map pixels per logo pixel).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from detector.geometry import Detection, containment, iou, nms

Merge = Callable[[list[Detection], float, float], list[Detection]]


def suppress_contained(dets: list[Detection], share: float = 0.7) -> list[Detection]:
    """Drop a box when it and a higher-scoring box of the same label are one inside the other: a part
    of the same logo (inside), or the same logo over-sized by a coarse level (around a better box)."""
    keep: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        if not any(k.label == d.label and max(containment(d, k), containment(k, d)) >= share for k in keep):
            keep.append(d)
    return keep


def _overlaps(a: Detection, b: Detection, iou_min: float, share: float) -> bool:
    return iou(a, b) >= iou_min or max(containment(a, b), containment(b, a)) >= share


def _clusters(dets: list[Detection], iou_min: float, share: float, finest_first: bool) -> list[list[Detection]]:
    """Greedy clusters: each box joins the first cluster whose leader (best box) it overlaps."""
    key = (lambda d: (-d.scale, -d.score)) if finest_first else (lambda d: -d.score)
    clusters: list[list[Detection]] = []
    for d in sorted(dets, key=key):
        for cl in clusters:
            if cl[0].label == d.label and _overlaps(cl[0], d, iou_min, share):
                cl.append(d)
                break
        else:
            clusters.append([d])
    return clusters


def merge_nms(dets: list[Detection], iou_min: float = 0.3, share: float = 0.7) -> list[Detection]:
    return suppress_contained(nms(dets, iou_min), share)


def merge_finest(dets: list[Detection], iou_min: float = 0.3, share: float = 0.7) -> list[Detection]:
    return sorted((cl[0] for cl in _clusters(dets, iou_min, share, True)), key=lambda d: -d.score)


def merge_fuse(dets: list[Detection], iou_min: float = 0.3, share: float = 0.7) -> list[Detection]:
    out = []
    for cl in _clusters(dets, iou_min, share, False):
        w = np.array([d.score * d.scale for d in cl]) + 1e-9
        coords = np.array([[d.x1, d.y1, d.x2, d.y2] for d in cl])
        x1, y1, x2, y2 = (coords * w[:, None]).sum(axis=0) / w.sum()
        out.append(Detection(cl[0].label, max(d.score for d in cl), x1, y1, x2, y2, cl[0].scale))
    return sorted(out, key=lambda d: -d.score)


MERGE_METHODS: dict[str, Merge] = {"nms": merge_nms, "fuse": merge_fuse, "finest": merge_finest}


def merge_levels(
    dets: list[Detection], method: str = "fuse", iou_min: float = 0.3, share: float = 0.7
) -> list[Detection]:
    """One box per logo from the boxes every pyramid level proposed (see the module for the methods)."""
    return MERGE_METHODS[method](dets, iou_min, share)
