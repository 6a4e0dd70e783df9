"""Classification metrics and decision thresholds (scikit-learn does the arithmetic).

Decision rule used everywhere: the most probable logo class c wins if p(c) >= its threshold,
otherwise the image is negative. Thresholds are per class and live in model.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve


def decide(probs: np.ndarray, classes: list[str], negative_class: str, thresholds: dict[str, float]) -> np.ndarray:
    """Predicted class index per row under the per-class threshold rule."""
    neg = classes.index(negative_class)
    pos = [i for i in range(len(classes)) if i != neg]
    if len(probs) == 0:
        return np.zeros(0, dtype=int)
    sub = probs[:, pos]
    best = np.asarray(pos)[sub.argmax(axis=1)]
    t = np.array([thresholds.get(classes[i], 0.5) for i in best])
    return np.where(probs[np.arange(len(probs)), best] >= t, best, neg)


def positive_average_precision(probs: np.ndarray, labels: np.ndarray, classes: list[str], negative_class: str) -> float:
    """Mean one-vs-rest AP over the logo classes that occur: the early-stopping score."""
    neg = classes.index(negative_class)
    aps = []
    for i in range(len(classes)):
        if i == neg:
            continue
        y = labels == i
        if y.any():
            aps.append(average_precision_score(y, probs[:, i]))
    return float(np.mean(aps)) if aps else float("nan")


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    precision: float
    recall: float
    reached: bool  # False when no threshold reaches the target precision


def choose_threshold(
    y: np.ndarray, scores: np.ndarray, target_precision: float | None, among: str = "recall"
) -> ThresholdChoice:
    """Max-F1 threshold, or, of those whose precision >= target, the one with the most recall (or F1).

    `among="f1"` is for small validation sets: the most-recall threshold sits at the edge where
    precision just reaches the target (with few negatives, almost anywhere), and does not carry over;
    the best-F1 one of the same set stays clear of both classes.
    """
    if not y.any():
        return ThresholdChoice(0.5, float("nan"), float("nan"), False)
    prec, rec, thr = precision_recall_curve(y, scores)
    prec, rec = prec[:-1], rec[:-1]  # the last point has no threshold
    if target_precision is None:
        f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-12)
        i = int(np.argmax(f1))
        return ThresholdChoice(_with_margin(thr[i], scores), float(prec[i]), float(rec[i]), True)
    ok = np.flatnonzero(prec >= target_precision)
    if len(ok) == 0:
        i = int(np.argmax(prec))
        return ThresholdChoice(_with_margin(thr[i], scores), float(prec[i]), float(rec[i]), False)
    if among == "f1":
        f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-12)
        i = int(ok[np.argmax(f1[ok])])
    else:
        i = int(ok[np.argmax(rec[ok])])
    return ThresholdChoice(_with_margin(thr[i], scores), float(prec[i]), float(rec[i]), True)


def _with_margin(threshold: float, scores: np.ndarray) -> float:
    """Move a threshold from the lowest accepted score halfway (in logit space) to the next score below.

    precision_recall_curve puts thresholds exactly on validation scores; on a clean validation set that
    is the weakest positive, and test images just below it flip. The midpoint keeps the same validation
    decisions with the widest margin on both sides.
    """
    below = scores[scores < threshold]
    if len(below) == 0:
        return float(threshold)
    eps = 1e-7

    def logit(p: float) -> float:
        p = min(max(p, eps), 1 - eps)
        return math.log(p / (1 - p))

    mid = (logit(float(threshold)) + logit(float(below.max()))) / 2
    return float(1 / (1 + math.exp(-mid)))


def choose_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    negative_class: str,
    target_precision: float | None = None,
) -> dict[str, ThresholdChoice]:
    return {
        c: choose_threshold(labels == i, probs[:, i], target_precision)
        for i, c in enumerate(classes)
        if c != negative_class
    }


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def classification_report(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    negative_class: str,
    thresholds: dict[str, float],
) -> dict:
    """Per-class precision/recall/F1/AP/support, accuracy and the confusion matrix, JSON-ready."""
    pred = decide(probs, classes, negative_class, thresholds)
    per_class = {}
    for i, c in enumerate(classes):
        y, p = labels == i, pred == i
        tp, fp, fn = int((y & p).sum()), int((~y & p).sum()), int((y & ~p).sum())
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if tp else (0.0 if y.any() else float("nan"))
        ap = average_precision_score(y, probs[:, i]) if y.any() and (~y).any() else float("nan")
        per_class[c] = {
            "precision": _nan_to_none(precision),
            "recall": _nan_to_none(recall),
            "f1": _nan_to_none(f1),
            "average_precision": _nan_to_none(ap),
            "support": int(y.sum()),
            "threshold": None if c == negative_class else round(float(thresholds.get(c, 0.5)), 4),
        }
    cm = confusion_matrix(labels, pred, labels=list(range(len(classes))))
    # "any logo vs none": the figure the original project reported for its single logo class.
    y_any, p_any = labels != classes.index(negative_class), pred != classes.index(negative_class)
    tp = int((y_any & p_any).sum())
    any_logo = {
        "precision": _nan_to_none(tp / p_any.sum() if p_any.sum() else float("nan")),
        "recall": _nan_to_none(tp / y_any.sum() if y_any.sum() else float("nan")),
    }
    return {
        "n": int(len(labels)),
        "accuracy": _nan_to_none(float((pred == labels).mean()) if len(labels) else float("nan")),
        "positive_average_precision": _nan_to_none(positive_average_precision(probs, labels, classes, negative_class)),
        "any_logo": any_logo,
        "per_class": per_class,
        "confusion_matrix": {"labels": classes, "rows_true_cols_pred": cm.tolist()},
    }
