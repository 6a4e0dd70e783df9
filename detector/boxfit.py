"""Box-size calibration: learn on validation scenes how CAM boxes miss the true logo box, and undo it.

A thresholded Grad-CAM blob is not the logo's outline: the classifier looks at the most telling part
of a logo (the CAM of a large logo covers its core and cuts off its edges) and a coarse map smears a
small one over its neighbours. Measured on the demo scenes: the CAM threshold that gives the best AP
still leaves about 40% of the boxes inside their logo with IoU 0.3-0.5, and the error depends on how
much of the window the box fills. So `detect calibrate` fits, on validation scenes, how the true width
and height relate to a box's fill of its window (log-linear) and how far the true centre sits from
it, stores that in model.json, and the scanner applies it to every merged box. It is the classic
bounding-box regression step of a detector, fitted on a few numbers instead of learned by a network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from detector.boxes import Detection, box_iou

#: A predicted box is paired with a true box of its label when they overlap at least this much:
#: boxes far off are false alarms, whose size says nothing about how CAM boxes miss logos.
PAIR_IOU = 0.2
MIN_PAIRS = 8
#: The correction never scales a side by more than this factor either way (a safety bound for
#: fits on few or odd scenes).
MAX_FACTOR = 3.0


@dataclass(frozen=True)
class BoxCorrection:
    """log(true side / box side) = a + b * log(fill), fill = the box's long side over the window side;
    the true centre = box centre + (dx, dy) x the box's (width, height)."""

    log_w: tuple[float, float]
    log_h: tuple[float, float]
    dx: float
    dy: float
    pairs: int

    def as_dict(self) -> dict:
        return {
            "log_w": [round(v, 5) for v in self.log_w],
            "log_h": [round(v, 5) for v in self.log_h],
            "dx": round(self.dx, 5),
            "dy": round(self.dy, 5),
            "pairs": self.pairs,
        }

    @classmethod
    def from_dict(cls, d: dict) -> BoxCorrection:
        return cls(tuple(d["log_w"]), tuple(d["log_h"]), float(d["dx"]), float(d["dy"]), int(d.get("pairs", 0)))


def _fill(d: Detection, tile: int) -> float:
    return max(d.x2 - d.x1, d.y2 - d.y1, 1e-3) * d.scale / tile


def pair_boxes(
    predicted: list[list[Detection]], truth: list[list[tuple[str, float, float, float, float]]], tile: int
) -> np.ndarray:
    """Rows (log fill, log w ratio, log h ratio, centre dx, centre dy) for every predicted box that
    overlaps a true box of its label; `truth` holds (label, x1, y1, x2, y2) per image."""
    rows = []
    for dets, gts in zip(predicted, truth, strict=True):
        for d in dets:
            best, best_iou = None, PAIR_IOU
            for label, *g in gts:
                iou = box_iou(tuple(g), (d.x1, d.y1, d.x2, d.y2)) if label == d.label else 0.0
                if iou >= best_iou:
                    best, best_iou = g, iou
            if best is None:
                continue
            pw, ph = max(d.x2 - d.x1, 1e-3), max(d.y2 - d.y1, 1e-3)
            gx1, gy1, gx2, gy2 = best
            rows.append(
                (
                    math.log(_fill(d, tile)),
                    math.log(max(gx2 - gx1, 1e-3) / pw),
                    math.log(max(gy2 - gy1, 1e-3) / ph),
                    ((gx1 + gx2) - (d.x1 + d.x2)) / 2 / pw,
                    ((gy1 + gy2) - (d.y1 + d.y2)) / 2 / ph,
                )
            )
    return np.asarray(rows, np.float64).reshape(-1, 5)


def fit_correction(rows: np.ndarray) -> BoxCorrection | None:
    """Least squares for the sides, medians for the centre shift; None with too few pairs."""
    if len(rows) < MIN_PAIRS:
        return None
    a = np.c_[np.ones(len(rows)), rows[:, 0]]
    if np.ptp(rows[:, 0]) < 1e-6:  # every box the same fill: a constant factor
        a = a[:, :1]
    cw = np.linalg.lstsq(a, rows[:, 1], rcond=None)[0]
    ch = np.linalg.lstsq(a, rows[:, 2], rcond=None)[0]
    cw = (float(cw[0]), float(cw[1]) if len(cw) > 1 else 0.0)
    ch = (float(ch[0]), float(ch[1]) if len(ch) > 1 else 0.0)
    return BoxCorrection(cw, ch, float(np.median(rows[:, 3])), float(np.median(rows[:, 4])), len(rows))


def correct_boxes(
    dets: list[Detection], corr: BoxCorrection | None, tile: int, width: int, height: int
) -> list[Detection]:
    """Apply a fitted correction to merged boxes, clipped to the image."""
    if corr is None:
        return dets
    out = []
    lim = math.log(MAX_FACTOR)
    for d in dets:
        f = math.log(_fill(d, tile))
        sw = math.exp(min(max(corr.log_w[0] + corr.log_w[1] * f, -lim), lim))
        sh = math.exp(min(max(corr.log_h[0] + corr.log_h[1] * f, -lim), lim))
        pw, ph = d.x2 - d.x1, d.y2 - d.y1
        cx, cy = (d.x1 + d.x2) / 2 + corr.dx * pw, (d.y1 + d.y2) / 2 + corr.dy * ph
        out.append(
            replace(
                d,
                x1=max(0.0, cx - pw * sw / 2),
                y1=max(0.0, cy - ph * sh / 2),
                x2=min(float(width), cx + pw * sw / 2),
                y2=min(float(height), cy + ph * sh / 2),
            )
        )
    return out
