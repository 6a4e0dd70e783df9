"""Tile CAMs -> boxes, one pyramid level at a time: stitch each positive tile's map where its cells
really look, threshold, join fragments, take connected components.

Each positive tile's map is normalised to its own peak, so a faint logo in one tile and a strong one in
another both give boxes; `threshold` is then "this fraction of the peak" (the literature's 15-20% gave
boxes about twice too large in a first experiment; the default is tuned on synthetic validation
scenes). Components come from scikit-image.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.measure import label as label_components
from skimage.measure import regionprops

from detector.geometry import Detection
from detector.pipeline.tiling import Tile


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
