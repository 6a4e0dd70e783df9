"""Heatmaps to boxes: stitch tile CAMs per pyramid level, threshold, connected components, merge.

Each positive tile's map is normalised to its own peak, so a faint logo in one tile and a strong one in
another both give boxes; `threshold` is then "this fraction of the peak" (the literature's 15-20% gave
boxes about twice too large in a first experiment; the default is tuned on synthetic validation
scenes). Components come from scikit-image, non-maximum suppression from OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.measure import label as label_components
from skimage.measure import regionprops

from detector.tiling import Tile


@dataclass(frozen=True)
class Detection:
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


class LevelCanvas:
    """Stitched maps of one class at one pyramid level, at a reduced resolution `k` of the image."""

    def __init__(self, width: int, height: int, k: float) -> None:
        self.k = k
        self.shape = (max(1, round(height * k)), max(1, round(width * k)))
        self.norm = np.zeros(self.shape, np.float32)  # max of peak-normalised maps
        self.score = np.zeros(self.shape, np.float32)  # max of tile probability x normalised map

    def add(self, tile: Tile, cam: np.ndarray, prob: float, image_w: int, image_h: int) -> None:
        peak = float(cam.max())
        if peak <= 0:
            return
        x1, y1, x2, y2 = tile.box()
        # Canvas pixels covered by the tile (the padded part of a small level lies outside the image).
        cx1, cy1, cx2, cy2 = (round(v * self.k) for v in (x1, y1, x2, y2))
        if cx2 - cx1 < 1 or cy2 - cy1 < 1:
            return
        m = cv2.resize((cam / peak).astype(np.float32), (cx2 - cx1, cy2 - cy1), interpolation=cv2.INTER_LINEAR)
        h, w = self.shape
        ox1, oy1, ox2, oy2 = max(cx1, 0), max(cy1, 0), min(cx2, w), min(cy2, h)
        if ox2 <= ox1 or oy2 <= oy1:
            return
        sub = m[oy1 - cy1 : oy2 - cy1, ox1 - cx1 : ox2 - cx1]
        np.maximum(self.norm[oy1:oy2, ox1:ox2], sub, out=self.norm[oy1:oy2, ox1:ox2])
        np.maximum(self.score[oy1:oy2, ox1:ox2], sub * prob, out=self.score[oy1:oy2, ox1:ox2])

    def boxes(self, label: str, scale: float, threshold: float, min_area_px: float = 16.0) -> list[Detection]:
        mask = self.norm >= threshold
        if not mask.any():
            return []
        out = []
        for region in regionprops(label_components(mask, connectivity=2)):
            y1, x1, y2, x2 = region.bbox
            if (x2 - x1) * (y2 - y1) / (self.k * self.k) < min_area_px:
                continue
            coords = region.coords
            score = float(self.score[coords[:, 0], coords[:, 1]].max())
            out.append(Detection(label, score, x1 / self.k, y1 / self.k, x2 / self.k, y2 / self.k, scale))
        return out


def nms(dets: list[Detection], iou: float = 0.45) -> list[Detection]:
    """Per-label non-maximum suppression (OpenCV), highest score first."""
    keep: list[Detection] = []
    for label in sorted({d.label for d in dets}):
        group = [d for d in dets if d.label == label]
        rects = [[d.x1, d.y1, d.x2 - d.x1, d.y2 - d.y1] for d in group]
        idx = cv2.dnn.NMSBoxes(rects, [d.score for d in group], 0.0, iou)
        keep += [group[int(i)] for i in np.asarray(idx).reshape(-1)]
    return sorted(keep, key=lambda d: -d.score)


#: A box is trusted at a pyramid level only where the logo spans this fraction of the tile: the range
#: the classifier was trained on (detector.tilecut.TileRules), with some slack.
LEVEL_FILL = (0.12, 1.15)


def fits_level(d: Detection, tile: int) -> bool:
    """Whether the box has a size the classifier can judge at the level it came from.

    At a fine level a big logo is several tiles of partial evidence (blobs inside it); at a coarse
    level a small logo is a speck whose map spreads over the tile. Both give wrong boxes.
    """
    fill = max(d.x2 - d.x1, d.y2 - d.y1) * d.scale / tile
    return LEVEL_FILL[0] <= fill <= LEVEL_FILL[1]


def suppress_contained(dets: list[Detection], containment: float = 0.7) -> list[Detection]:
    """Drop a box lying mostly inside a higher-scoring box of the same label (a part of the same logo)."""
    keep: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        area = max((d.x2 - d.x1) * (d.y2 - d.y1), 1e-6)
        inside = any(
            k.label == d.label
            and max(0.0, min(k.x2, d.x2) - max(k.x1, d.x1)) * max(0.0, min(k.y2, d.y2) - max(k.y1, d.y1)) / area
            >= containment
            for k in keep
        )
        if not inside:
            keep.append(d)
    return keep


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
