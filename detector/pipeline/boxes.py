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

from detector.pipeline.tiling import Tile


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

    def add(self, tile: Tile, cam: np.ndarray, prob: float, geometry: tuple[int, int]) -> None:
        """Paint one tile's map where its cells really look: cell i covers tile pixels
        offset - stride/2 + stride*i .. + stride (see model.CAM_GEOMETRY)."""
        peak = float(cam.max())
        if peak <= 0:
            return
        stride, offset = geometry
        n_y, n_x = cam.shape
        f = self.k / tile.scale  # canvas pixels per tile pixel
        x0 = (tile.x + offset - stride / 2) * f
        y0 = (tile.y + offset - stride / 2) * f
        cx1, cy1 = round(x0), round(y0)
        cx2, cy2 = round(x0 + stride * n_x * f), round(y0 + stride * n_y * f)
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

    def boxes(
        self, label: str, scale: float, threshold: float, join_px: float = 0.0, min_area_px: float = 16.0
    ) -> list[Detection]:
        """Connected components of the map above `threshold`; fragments closer than `join_px` canvas
        pixels are one component (CAMs of early blocks light up a logo's parts, not its whole)."""
        mask = self.norm >= threshold
        if not mask.any():
            return []
        grouping = mask
        r = int(round(join_px / 2))
        if r >= 1:
            kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))  # separable: fast
            grouping = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
        labels = label_components(grouping, connectivity=2)
        out = []
        for region in regionprops(labels):
            inside = mask[region.slice] & (labels[region.slice] == region.label)
            ys, xs = np.nonzero(inside)
            if len(ys) == 0:
                continue
            y1, x1 = ys.min() + region.slice[0].start, xs.min() + region.slice[1].start
            y2, x2 = ys.max() + 1 + region.slice[0].start, xs.max() + 1 + region.slice[1].start
            if (x2 - x1) * (y2 - y1) / (self.k * self.k) < min_area_px:
                continue
            score = float(self.score[region.slice][inside].max())
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
#: the classifier was trained on (detector.data.tilecut.TileRules), with some slack.
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


MERGE_METHODS = ("fuse", "nms", "finest")


def _overlaps(a: Detection, b: Detection, iou: float, containment: float) -> bool:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    if inter <= 0:
        return False
    area_a, area_b = (a.x2 - a.x1) * (a.y2 - a.y1), (b.x2 - b.x1) * (b.y2 - b.y1)
    return inter / (area_a + area_b - inter) >= iou or inter / max(min(area_a, area_b), 1e-6) >= containment


def merge_levels(
    dets: list[Detection], method: str = "fuse", iou: float = 0.3, containment: float = 0.7
) -> list[Detection]:
    """One box per logo from the boxes every pyramid level proposed.

    - fuse: cluster overlapping boxes (IoU or containment), average their corners weighted by score x
      level scale (weighted box fusion, with finer levels trusted more: they have more map pixels per
      logo pixel). Coarse levels over-size a small logo, fine levels see only the core of a big one;
      the weighted mean sits closer than either;
    - nms: keep the best-scoring box of each cluster (OpenCV NMS, then containment suppression);
    - finest: keep the box of the finest level in each cluster (the most map pixels per logo pixel).
    """
    if method == "nms":
        return suppress_contained(nms(dets, iou), containment)
    order = sorted(dets, key=(lambda d: (-d.scale, -d.score)) if method == "finest" else (lambda d: -d.score))
    clusters: list[list[Detection]] = []
    for d in order:
        for cl in clusters:
            if cl[0].label == d.label and _overlaps(cl[0], d, iou, containment):
                cl.append(d)
                break
        else:
            clusters.append([d])
    out = []
    for cl in clusters:
        if method == "finest":
            out.append(cl[0])
            continue
        w = np.array([d.score * d.scale for d in cl]) + 1e-9
        coords = np.array([[d.x1, d.y1, d.x2, d.y2] for d in cl])
        x1, y1, x2, y2 = (coords * w[:, None]).sum(axis=0) / w.sum()
        out.append(Detection(cl[0].label, max(d.score for d in cl), x1, y1, x2, y2, cl[0].scale))
    return sorted(out, key=lambda d: -d.score)


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
