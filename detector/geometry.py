"""Boxes and the one place their geometry is computed: intersection, IoU, containment, NMS.

A box is anything with x1, y1, x2, y2 (a `Detection`, a ground-truth `Box`) or a 4-tuple (a tile's
extent); every stage measures overlap with these functions, so there is one IoU.
`Detections` holds many boxes as parallel numpy arrays (as supervision's `Detections` does): what
vectorized code (NMS, matching, COCO) wants, convertible to and from the list of `Detection` records
a `ScanResult` carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np


class HasBox(Protocol):
    x1: float
    y1: float
    x2: float
    y2: float


BoxLike = HasBox | Sequence[float]


def corners(b: BoxLike) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) of a box object or a 4-sequence."""
    if hasattr(b, "x1"):
        return (b.x1, b.y1, b.x2, b.y2)  # type: ignore[union-attr]
    x1, y1, x2, y2 = b  # type: ignore[misc]
    return (float(x1), float(y1), float(x2), float(y2))


def area(b: BoxLike) -> float:
    x1, y1, x2, y2 = corners(b)
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def intersection(a: BoxLike, b: BoxLike) -> float:
    """The area two boxes share."""
    ax1, ay1, ax2, ay2 = corners(a)
    bx1, by1, bx2, by2 = corners(b)
    return max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))


def iou(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union; 0 for boxes with no area."""
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def containment(inner: BoxLike, outer: BoxLike) -> float:
    """The fraction of `inner`'s area that lies inside `outer`."""
    return intersection(inner, outer) / max(area(inner), 1e-6)


# The name the evaluation and the tests have always used.
box_iou = iou


@dataclass(frozen=True)
class Box:
    """A labelled box without a score: ground truth (box datasets, calibration and evaluation truths)."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


@dataclass(frozen=True)
class Detection:
    """One box the scanner found: a label, a score, the corners in image pixels, and the pyramid
    scale it came from (finer levels have more map pixels per logo pixel)."""

    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float
    scale: float

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "score": round(self.score, 4),
            "x1": round(self.x1, 1),
            "y1": round(self.y1, 1),
            "x2": round(self.x2, 1),
            "y2": round(self.y2, 1),
            "scale": round(self.scale, 4),
        }


@dataclass
class Detections:
    """Boxes as parallel arrays: xyxy (N, 4), confidence (N,), label (N,), scale (N,).

    Example:
        >>> d = Detections.from_list([Detection("acme", 0.9, 0, 0, 10, 10, 1.0),
        ...                           Detection("acme", 0.5, 1, 1, 11, 11, 1.0)])
        >>> len(d.with_nms(0.45)), d[d.confidence > 0.6].to_list()[0].score
        (1, 0.9)
    """

    xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float64))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    label: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))

    @classmethod
    def from_list(cls, dets: Iterable[Detection]) -> Detections:
        items = list(dets)
        if not items:
            return cls()
        return cls(
            np.array([[d.x1, d.y1, d.x2, d.y2] for d in items], np.float64),
            np.array([d.score for d in items], np.float64),
            np.array([d.label for d in items], object),
            np.array([d.scale for d in items], np.float64),
        )

    def to_list(self) -> list[Detection]:
        return [
            Detection(str(lb), float(s), *map(float, box), float(sc))
            for box, s, lb, sc in zip(self.xyxy, self.confidence, self.label, self.scale, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.confidence)

    def __iter__(self) -> Iterator[Detection]:
        return iter(self.to_list())

    def __getitem__(self, index: Any) -> Detections:
        """A subset by boolean mask, index array or slice (as numpy indexes)."""
        if isinstance(index, int | np.integer):
            index = [int(index)]
        return Detections(self.xyxy[index], self.confidence[index], self.label[index], self.scale[index])

    @classmethod
    def merge(cls, parts: Iterable[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("xyxy", "confidence", "label", "scale")))

    def with_nms(self, iou_threshold: float = 0.45) -> Detections:
        """Per-label non-maximum suppression (OpenCV's), highest confidence first."""
        keep: list[int] = []
        for lb in sorted(set(self.label.tolist())):
            idx = np.flatnonzero(self.label == lb)
            x1, y1, x2, y2 = self.xyxy[idx].T
            rects = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1).tolist()
            # OpenCV keeps scores strictly above its threshold (>= 0): shifted by 1, a score of 0 is kept too
            kept = cv2.dnn.NMSBoxes(rects, (self.confidence[idx] + 1.0).tolist(), 0.0, iou_threshold)
            keep += idx[np.asarray(kept, int).reshape(-1)].tolist()
        order = sorted(keep, key=lambda i: -self.confidence[i])
        return self[np.asarray(order, int)]

    def iou_matrix(self, other: Detections | np.ndarray) -> np.ndarray:
        """IoU of every box here (rows) with every box of `other` (columns)."""
        b = other.xyxy if isinstance(other, Detections) else np.asarray(other, np.float64).reshape(-1, 4)
        a = self.xyxy
        ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
        iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
        inter = ix * iy
        area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
        area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
        union = area_a[:, None] + area_b[None, :] - inter
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(dets: list[Detection], iou_threshold: float = 0.45) -> list[Detection]:
    """Per-label non-maximum suppression of a list of detections, highest score first."""
    return Detections.from_list(dets).with_nms(iou_threshold).to_list()
