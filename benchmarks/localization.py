"""Box extraction choices side by side: CAM method x threshold x merge across levels, on scenes.

The model runs once per scene; each choice only redoes the box stage, so the table is cheap.

    .venv/bin/python benchmarks/localization.py MODEL_DIR SCENES [--split all] [--limit 80]
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
    from detector.boxdata import read_box_dataset
    from detector.scan import ScanOptions
    from detector.scene_eval import collect_evidence, evaluate_scenes, scene_split

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model")
    p.add_argument("scenes")
    p.add_argument("--split", default="all")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--join", type=float, nargs="+", default=[0.0, 2.0, 4.0])
    args = p.parse_args()
    backend = open_backend(args.model)
    ds = read_box_dataset(args.scenes)
    records = scene_split(ds, args.split)
    if args.limit:
        records = records[: args.limit]
    base = ScanOptions(cam_method="gradcam++")  # so that the tiles' feature maps are computed and kept
    evidence = collect_evidence(backend, ds, records, base, progress="model", keep_features=True)
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


if __name__ == "__main__":
    main()
