"""Box extraction choices side by side: CAM method x threshold x merge across levels, on scenes.

The model runs once per scene; each choice only redoes the box stage, so the table is cheap.

    .venv/bin/python benchmarks/localization.py MODEL SCENES [--split all] [--limit 80] [--fit-on VAL_SCENES]

With `--fit-on`, a second table: for each CAM threshold and joining distance (NMS merge), the box
calibration of `detect calibrate` (detector/pipeline/calibration.py) fitted on the VAL_SCENES and judged on SCENES:
raw boxes, with the size/centre correction, and with the box scorer too. The model's own stored
calibration is never used here (every row is scanned with it off).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from detector.backends import open_backend
    from detector.data.boxes import read_box_dataset
    from detector.evaluation.scenes import collect_evidence, evaluate_scenes, scene_split
    from detector.pipeline.options import ScanOptions

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model")
    p.add_argument("scenes")
    p.add_argument("--split", default="all")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--join", type=float, nargs="+", default=[0.0, 2.0, 4.0])
    p.add_argument("--fit-on", default=None, help="validation scenes: also compare the fitted box calibration")
    p.add_argument("--calibration-only", action="store_true", help="with --fit-on: skip the first table")
    args = p.parse_args()
    backend = open_backend(args.model)
    ds = read_box_dataset(args.scenes)
    records = scene_split(ds, args.split)
    if args.limit:
        records = records[: args.limit]
    base = ScanOptions(cam_method="gradcam++", box_calibration=False)  # feature maps computed and kept
    need_features = not args.calibration_only
    evidence = collect_evidence(backend, ds, records, base, progress="model", keep_features=need_features)
    if args.fit_on:
        calibration_table(backend, ds, evidence, read_box_dataset(args.fit_on), args)
    if args.calibration_only:
        return
    rows = []
    for join in args.join:
        for method, merge in [("gradcam", "fuse"), ("gradcam", "nms"), ("gradcam", "finest"), ("gradcam++", "nms")]:
            for thr in (0.3, 0.4, 0.5, 0.6, 0.7):
                opts = replace(base, cam_method=method, merge=merge, cam_threshold=thr, join_cells=join)
                rep = evaluate_scenes(backend, ds, args.split, opts, evidence).report
                rows.append(
                    {
                        "cam": method,
                        "join": join,
                        "merge": merge,
                        "cam_threshold": thr,
                        "ap50": rep["box"]["ap50"],
                        "ap": rep["box"]["ap"],
                        "detections": rep["box"].get("detections"),
                    }
                )
    t = Table(
        title=f"box AP on {len(evidence)} scenes of {args.scenes} ({backend.meta.cam_layer}, "
        f"{backend.meta.input_size} px)"
    )
    for col in ("CAM", "join (cells)", "merge", "threshold", "AP@0.5", "AP@[.5:.95]", "boxes"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(
            r["cam"],
            f"{r['join']:g}",
            r["merge"],
            f"{r['cam_threshold']:g}",
            f"{r['ap50']:.3f}",
            f"{r['ap']:.3f}",
            str(r["detections"]),
        )
    Console().print(t)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


def calibration_table(backend, ds, evidence, val_ds, args) -> None:
    """Raw vs corrected vs corrected + rescored boxes, fitted on validation scenes, judged on `ds`."""
    from rich.console import Console
    from rich.table import Table

    from detector.evaluation.scenes import box_ap, collect_evidence, evaluate_scenes, scene_split
    from detector.pipeline.calibration import BoxCalibration, fit_box_calibration
    from detector.pipeline.options import ScanOptions

    tile, classes = backend.meta.input_size, backend.meta.positive_classes
    plain = ScanOptions(box_calibration=False)
    val_records = scene_split(val_ds, "all")
    val_evidence = collect_evidence(backend, val_ds, val_records, plain, progress="model (validation)")
    truth = [r.boxes for r, _ in val_evidence]
    rows = []
    for join in (2.0, 4.0):
        for thr in (0.3, 0.4, 0.5, 0.6, 0.7):
            opts = replace(plain, cam_threshold=thr, join_cells=join)
            val = evaluate_scenes(backend, val_ds, "all", opts, val_evidence)
            sizes = [(r.width, r.height) for r in val.results]
            fit = fit_box_calibration([r.boxes for r in val.results], truth, sizes, tile)
            size_only = BoxCalibration(fit.correction, None)
            test = evaluate_scenes(backend, ds, args.split, opts, evidence)
            corrected = [replace(r, boxes=size_only.apply(r.boxes, tile, r.width, r.height)) for r in test.results]
            scored = [replace(r, boxes=fit.apply(r.boxes, tile, r.width, r.height)) for r in test.results]
            row = {"join": join, "cam_threshold": thr}
            for name, res in (("raw", test.results), ("corrected", corrected), ("corrected+scored", scored)):
                b = box_ap(res, test.records, classes)
                row[name] = {"ap50": b["ap50"], "ap": b["ap"], "by_size": b.get("ap50_by_size")}
            rows.append(row)
    t = Table(
        title=f"box AP@0.5 on {len(evidence)} scenes of {args.scenes}, box calibration fitted on "
        f"{len(val_evidence)} scenes of {args.fit_on} (NMS merge)"
    )
    for col in ("join (cells)", "threshold", "raw", "corrected", "corrected + scored", "small / medium / large"):
        t.add_column(col, justify="right")
    for r in rows:
        sizes = " / ".join(f"{v:.2f}" if v is not None else "-" for v in r["corrected+scored"]["by_size"].values())
        t.add_row(
            f"{r['join']:g}",
            f"{r['cam_threshold']:g}",
            f"{r['raw']['ap50']:.3f}",
            f"{r['corrected']['ap50']:.3f}",
            f"{r['corrected+scored']['ap50']:.3f}",
            sizes,
        )
    Console().print(t)
    if args.out:
        Path(args.out).with_suffix(".calibration.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
