"""Evaluate a model directory on a dataset split: metrics, tuned thresholds, PR curves, a report.

Thresholds are always chosen on the validation split and applied to the split being reported, so the
test figures are never tuned on the test images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.data.boxes import is_box_dataset
from detector.data.folders import decode_samples, scan_dataset
from detector.data.tilecut import tile_dataset_for
from detector.errors import DatasetError
from detector.evaluation.metrics import choose_thresholds, classification_report
from detector.model.predict import predict_batches
from detector.model.store import ModelMeta, load_model_dir, model_sha256, update_meta
from detector.training.bottleneck import default_cache_dir

#: The original project's figures on its logo class (TF retrain script, one brand, social-media photos).
ORIGINAL_PROJECT = {"precision": 0.77, "recall": 0.40}


@dataclass
class EvalResult:
    report: dict
    report_path: Path
    pr_curve_path: Path
    meta: ModelMeta


def _probs_for(model, meta: ModelMeta, samples, batch_size: int, what: str):
    decoded, bad = decode_samples(samples, meta.input_size, progress=f"decode {what}")
    if not decoded:
        return np.zeros((0, len(meta.classes))), np.zeros(0, int), bad
    pixels = np.stack([d.pixels for d in decoded])
    labels = np.array([meta.classes.index(d.sample.label) for d in decoded])
    return predict_batches(model, pixels, batch_size, progress=f"predict {what}"), labels, bad


def evaluate(
    model_dir: str | Path,
    data: str | Path,
    split: str = "test",
    target_precision: float | None = None,
    batch_size: int = 32,
    out_dir: str | Path | None = None,
) -> EvalResult:
    model, meta = load_model_dir(model_dir)
    if is_box_dataset(data):  # scenes with boxes: judge the classifier on the tiles the scanner would cut
        data = tile_dataset_for(data, meta.input_size, default_cache_dir().parent / "tiles", meta.negative_class)
    ds = scan_dataset(data, meta.negative_class)
    unknown = sorted(set(ds.classes) - set(meta.classes))
    if unknown:
        raise DatasetError(f"{data}: classes {unknown} are not among the model's classes {meta.classes}")
    if split not in ("test", "val", "all"):
        raise DatasetError("--split must be test, val or all")
    samples = ds.in_split(split)
    if not samples:
        raise DatasetError(f"{data}: the '{split}' split is empty")

    tuning = None
    if target_precision is not None:
        val_probs, val_labels, _ = _probs_for(model, meta, ds.in_split("val"), batch_size, "val")
        if not len(val_labels):
            raise DatasetError(f"{data}: no validation images to choose a threshold on")
        tuning = choose_thresholds(val_probs, val_labels, meta.classes, meta.negative_class, target_precision)
        meta = update_meta(model_dir, thresholds={c: float(t.threshold) for c, t in tuning.items()})
        if split == "val":
            probs, labels, bad = val_probs, val_labels, []
    if target_precision is None or split != "val":
        probs, labels, bad = _probs_for(model, meta, samples, batch_size, split)

    report = classification_report(probs, labels, meta.classes, meta.negative_class, meta.thresholds)
    report.update(
        {
            "model_dir": str(model_dir),
            "model_sha256": model_sha256(model_dir),
            "data": str(data),
            "split": split,
            "skipped": [{"path": p, "reason": r} for p, r in ds.skipped + bad],
            "original_project": ORIGINAL_PROJECT,
            "threshold_tuning": None
            if tuning is None
            else {
                "target_precision": target_precision,
                "on": "val",
                "per_class": {
                    c: {
                        "threshold": float(t.threshold),
                        "val_precision": round(t.precision, 4),
                        "val_recall": round(t.recall, 4),
                        "reached": t.reached,
                    }
                    for c, t in tuning.items()
                },
            },
        }
    )
    out = Path(out_dir) if out_dir else Path(model_dir) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / f"report-{split}.json"
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    pr_path = out / f"pr-curve-{split}.png"
    plot_pr_curves(probs, labels, meta, pr_path, title=f"{Path(model_dir).name} on {Path(data).name} ({split})")
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
