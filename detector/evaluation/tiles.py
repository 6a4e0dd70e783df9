"""Evaluate a model directory on a dataset split: metrics, tuned thresholds, PR curves, a report.

Thresholds are always chosen on the validation split and applied to the split being reported, so the
test figures are never tuned on the test images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.backends import Backend, open_backend
from detector.data.boxes import is_box_dataset
from detector.data.folders import Dataset, decode_samples, scan_dataset
from detector.data.tilecut import tile_dataset_for
from detector.errors import DatasetError
from detector.evaluation.metrics import choose_thresholds, classification_report
from detector.model.meta import ModelMeta
from detector.model.store import update_meta
from detector.training.bottleneck import default_cache_dir

#: The original project's figures on its logo class (TF retrain script, one brand, social-media photos).
ORIGINAL_PROJECT = {"precision": 0.77, "recall": 0.40}


@dataclass
class EvalResult:
    report: dict
    report_path: Path
    pr_curve_path: Path
    meta: ModelMeta


def _probs_for(backend: Backend, samples: list, batch_size: int, what: str) -> tuple[np.ndarray, np.ndarray, list]:
    """Decode `samples` at the model's input size and classify them through the backend."""
    meta = backend.meta
    decoded, bad = decode_samples(samples, meta.input_size, progress=f"decode {what}")
    if not decoded:
        return np.zeros((0, len(meta.classes))), np.zeros(0, int), bad
    pixels = np.stack([d.pixels for d in decoded])
    labels = np.array([meta.classes.index(d.sample.label) for d in decoded])
    probs = [backend.predict(pixels[k : k + batch_size]).probs for k in range(0, len(pixels), batch_size)]
    return np.concatenate(probs), labels, bad


def _dataset(data: str | Path, meta: ModelMeta, split: str) -> tuple[Path, Dataset]:
    """The class folders to judge (tiles cut from a box dataset), checked against the model's classes."""
    if split not in ("test", "val", "all"):
        raise DatasetError("split must be test, val or all")
    if is_box_dataset(data):  # scenes with boxes: judge the classifier on the tiles the scanner would cut
        data = tile_dataset_for(data, meta.input_size, default_cache_dir().parent / "tiles", meta.negative_class)
    ds = scan_dataset(data, meta.negative_class)
    unknown = sorted(set(ds.classes) - set(meta.classes))
    if unknown:
        raise DatasetError(f"{data}: classes {unknown} are not among the model's classes {meta.classes}")
    if not ds.in_split(split):
        raise DatasetError(f"{data}: the '{split}' split is empty")
    return Path(data), ds


def _tuning_report(tuning: dict | None, target_precision: float | None) -> dict | None:
    if tuning is None:
        return None
    per_class = {
        c: {
            "threshold": float(t.threshold),
            "val_precision": round(t.precision, 4),
            "val_recall": round(t.recall, 4),
            "reached": t.reached,
        }
        for c, t in tuning.items()
    }
    return {"target_precision": target_precision, "on": "val", "per_class": per_class}


def evaluate(
    model: str | Path,
    data: str | Path,
    split: str = "test",
    target_precision: float | None = None,
    batch_size: int = 32,
    out_dir: str | Path | None = None,
) -> EvalResult:
    """Classification metrics of a model (directory or .onnx file) on a split of class folders (or the
    tiles of a box dataset); with `target_precision`, per-class tile thresholds chosen on val and
    stored in the model directory's model.json.

    Example:
        >>> res = evaluate("demo-output/model", "demo-output/train/tiles", "test")  # doctest: +SKIP
        >>> res.report["macro_f1"]  # doctest: +SKIP
    """
    backend = open_backend(model)
    meta = backend.meta
    data, ds = _dataset(data, meta, split)
    tuning = None
    if target_precision is not None:
        if not Path(model).is_dir():
            raise DatasetError(f"{model}: thresholds are stored in a model directory; evaluate the directory")
        val_probs, val_labels, _ = _probs_for(backend, ds.in_split("val"), batch_size, "val")
        if not len(val_labels):
            raise DatasetError(f"{data}: no validation images to choose a threshold on")
        tuning = choose_thresholds(val_probs, val_labels, meta.classes, meta.negative_class, target_precision)
        meta = update_meta(model, thresholds={c: float(t.threshold) for c, t in tuning.items()})
    if tuning is not None and split == "val":
        probs, labels, bad = val_probs, val_labels, []
    else:
        probs, labels, bad = _probs_for(backend, ds.in_split(split), batch_size, split)
    report = classification_report(probs, labels, meta.classes, meta.negative_class, meta.thresholds)
    report |= {
        "model_dir": str(model),
        "model_sha256": backend.model_sha256,
        "data": str(data),
        "split": split,
        "skipped": [{"path": p, "reason": r} for p, r in ds.skipped + bad],
        "original_project": ORIGINAL_PROJECT,
        "threshold_tuning": _tuning_report(tuning, target_precision),
    }
    out = Path(out_dir) if out_dir else (Path(model) if Path(model).is_dir() else Path(model).parent) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / f"report-{split}.json"
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    pr_path = out / f"pr-curve-{split}.png"
    plot_pr_curves(probs, labels, meta, pr_path, title=f"{Path(model).name} on {data.name} ({split})")
    return EvalResult(report, report_path, pr_path, meta)


def plot_pr_curves(probs: np.ndarray, labels: np.ndarray, meta: ModelMeta, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import PrecisionRecallDisplay

    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    for i, c in enumerate(meta.classes):
        if c == meta.negative_class or not (labels == i).any():
            continue
        PrecisionRecallDisplay.from_predictions(labels == i, probs[:, i], name=c, ax=ax)
    ax.scatter(
        [ORIGINAL_PROJECT["recall"]],
        [ORIGINAL_PROJECT["precision"]],
        marker="*",
        s=160,
        color="black",
        zorder=5,
        label="original project (77% P, 40% R)",
    )
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
