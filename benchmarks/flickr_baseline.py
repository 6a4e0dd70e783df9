"""Baseline on real photos: FlickrLogos-27 (dev part, in ../shared) as "any logo" vs "none".

Arranges the photos into class folders with symlinks (nothing is copied into the project), trains with
the weights available here, evaluates on the test split and writes the report to benchmarks/results/.
These are the figures that ImageNet weights and the later scanning issues must beat.

    .venv/bin/python benchmarks/flickr_baseline.py [--weights none] [--input-size 128] [--minutes 8]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
FLICKR = ROOT.parent / "shared" / "data" / "flickrlogos27-dev"


def arrange(dest: Path) -> Path:
    """Class folders of symlinks: logo/ (any of the 16 brands) and no-logo/ (label 'none')."""
    with open(FLICKR / "image_labels.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        cls = "no-logo" if row["label"] == "none" else "logo"
        link = dest / cls / row["file"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(FLICKR / "images" / row["file"])
    return dest


def main() -> None:
    from rich.console import Console

    from detector.console.tables import confusion_table, dataset_table, evaluation_table
    from detector.data.folders import scan_dataset
    from detector.evaluation.tiles import evaluate
    from detector.training import TrainConfig, train

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--weights", default="none")
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--cam-layer", default="mixed7")
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--work", default="/tmp/logo-detector-flickr")
    args = p.parse_args()
    if not FLICKR.is_dir():
        raise SystemExit(f"{FLICKR} not found: this benchmark needs ../shared beside the project")
    console = Console()
    work = Path(args.work)
    data = arrange(work / "data")
    console.print(dataset_table(scan_dataset(data)))
    model = work / f"model-{args.weights}-{args.input_size}-{args.cam_layer}"
    t0 = time.monotonic()
    fine_tune = "all" if args.weights == "none" else "2"
    train(
        TrainConfig(
            data=str(data),
            out=str(model),
            weights=args.weights,
            input_size=args.input_size,
            cam_layer=args.cam_layer,
            fine_tune=fine_tune,
            fine_tune_epochs=40,
            patience=8,
            random_crop=10,
            random_brightness=15,
            max_minutes=args.minutes,
            batch_size=32,
        ),
        log=lambda s: console.print(s, highlight=False),
    )
    train_s = time.monotonic() - t0
    res = evaluate(model, data, "test", target_precision=0.77)
    console.print(evaluation_table(res.report))
    console.print(confusion_table(res.report))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "dataset": "flickrlogos27-dev, any logo vs none",
        "weights": args.weights,
        "input_size": args.input_size,
        "cam_layer": args.cam_layer,
        "fine_tune": fine_tune,
        "train_seconds": round(train_s, 1),
        "test": {
            k: res.report[k]
            for k in (
                "n",
                "accuracy",
                "positive_average_precision",
                "any_logo",
                "per_class",
                "confusion_matrix",
                "threshold_tuning",
            )
        },
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
    }
    path = out / f"flickr-baseline-{args.weights}-{args.input_size}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"written {path}")


if __name__ == "__main__":
    main()
