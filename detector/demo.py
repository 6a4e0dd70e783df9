"""`make demo`: the whole path offline, on the project's own demo logo.

1. `detect synth`: scenes with the demo logo (boxes known) and the tiles cut from them;
2. `detect train`: Inception v3 from scratch at 128 px, head on mixed2 (no ImageNet weights offline);
   `detect mine` adds the windows of the training scenes it wrongly calls a logo to the negatives, and
   `detect train --init` trains on a few minutes more;
3. `detect evaluate` on the held-out tiles; `detect export` to ONNX (the faster backend, used from here on);
4. `detect calibrate` on validation scenes, and the ONNX file exported again with the calibrated values;
5. `detect evaluate` on held-out scenes (image verdicts, box AP) and `detect scan` of a few of them,
   writing annotated images and heatmaps to demo-output/scans/;
6. `detect scan` of every test scene and of a short synthetic video (the logo on screen from 2 s to
   5 s) into one JSONL, and `detect report` of it into demo-output/report/.
Each step prints the `detect` command that does the same, so the demo doubles as a tutorial.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The demo video: seconds, frames per second, when the logo is on screen, sampling step.
DEMO_VIDEO = {"seconds": 8.0, "fps": 10.0, "logo_from_s": 2.0, "logo_to_s": 5.0, "every_s": 0.5}


def report_step(backend: Any, images: list[Path], out: Path, log: Any = print) -> Path:
    """The demo's last step: scan `images` and a synthetic clip into out/scans/results.jsonl, then
    write the exposure report of both into out/report/ (index.html, summary.csv, summary.json).

    Example:
        >>> report_step(open_backend("demo-output/model.onnx"), images, Path("demo-output"))  # doctest: +SKIP
        PosixPath('demo-output/report/index.html')
    """
    from detector.api import Detector
    from detector.report import build
    from detector.results.folders import scan_many
    from detector.results.writer import OutputOptions, ScanWriter
    from detector.video.decode import Sampling
    from detector.video.synth import write_demo_video

    v = DEMO_VIDEO
    clip = write_demo_video(
        out / "video" / "demo-clip.avi", v["seconds"], v["fps"], v["logo_from_s"], v["logo_to_s"], size=(640, 480)
    )
    results = out / "scans" / "results.jsonl"
    det = Detector(backend)
    from rich.console import Console

    writer = ScanWriter(OutputOptions(format="jsonl", output=str(results)), backend.meta, console=Console(quiet=True))
    try:
        summary = scan_many(
            det,
            [*images, clip],
            writer.add,
            progress=False,
            sampling=Sampling(v["every_s"]),
            on_record=writer.add_record,
        )
    finally:
        writer.close()
    report = build([results])
    files = report.write(out / "report")
    row = next((r for r in report.brands if r.exposure_s), None)
    log(
        f"{summary.images - summary.frames} photos and {summary.frames} video frames in {results}; "
        f"report in {files['html']}"
        + (
            f" ({row.brand}: {row.exposure_s:.1f} s on screen in the clip; "
            f"the logo is shown {v['logo_from_s']:g}-{v['logo_to_s']:g} s)"
            if row
            else ""
        )
    )
    return files["html"]


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console

    from detector.tfquiet import import_tensorflow_quietly

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="demo-output")
    p.add_argument("--scenes", type=int, default=260, help="training scenes")
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--cam-layer", default="mixed2")
    p.add_argument("--minutes", type=float, default=6.0, help="training time budget")
    p.add_argument("--mine-minutes", type=float, default=3.0, help="training budget after mining")
    p.add_argument("--eval-scenes", type=int, default=100, help="held-out test scenes")
    p.add_argument(
        "--val-scenes", type=int, default=200, help="validation scenes (calibration: more scenes, steadier choices)"
    )
    args = p.parse_args(argv)
    console = Console()
    import_tensorflow_quietly()

    from detector.api import Detector
    from detector.backends import open_backend
    from detector.console.tables import confusion_table, dataset_table, evaluation_table, export_table, scene_table
    from detector.data.boxes import read_box_dataset
    from detector.data.folders import scan_dataset
    from detector.evaluation.calibrate import calibrate, save_calibration
    from detector.evaluation.scenes import evaluate_scenes
    from detector.evaluation.tiles import evaluate
    from detector.pipeline.options import ScanOptions
    from detector.results.folders import list_images, scan_many
    from detector.results.writer import OutputOptions, ScanWriter
    from detector.synth import SynthConfig, synthesize
    from detector.training import TrainConfig, mine_hard_negatives, train
    from export.onnx_export import export_model

    out = Path(args.out)
    size = args.input_size
    model = out / "model"
    t0 = time.monotonic()

    def step(title: str, cmd: str) -> None:
        console.rule(title)
        console.print(f"$ {cmd}", highlight=False)

    step(
        "1. synthesize scenes of the demo logo, and tiles cut from them",
        f"detect synth --out {out}/train --scenes {args.scenes} --seed 1 --tile-size {size}",
    )
    if not (out / "train" / "tiles" / "no-logo").is_dir():
        res = synthesize(SynthConfig(out=out / "train", scenes=args.scenes, seed=1, tile_size=size))
        console.print(f"{res.scenes} scenes, {res.boxes} boxes, {res.scenes / res.seconds:.0f} scenes/s")
    for name, seed, n in (("val", 2, args.val_scenes), ("test", 3, args.eval_scenes)):
        ann = out / name / "scenes" / "annotations.json"
        if not ann.is_file() or len(read_box_dataset(out / name / "scenes").images) != n:
            shutil.rmtree(out / name, ignore_errors=True)
            synthesize(SynthConfig(out=out / name, scenes=n, seed=seed, tiles=False))
    console.print(dataset_table(scan_dataset(out / "train" / "tiles")))

    base = out / "model-base"
    tiles = out / "train" / "tiles"
    step(
        "2. train (from scratch: no ImageNet weights offline), mine hard negatives, train again",
        f"detect train {tiles} --out {base} --weights none --input-size {size} "
        f"--cam-layer {args.cam_layer} --fine-tune all --max-minutes {args.minutes:g}\n"
        f"$ detect mine {base} {out}/train/scenes --out {tiles}\n"
        f"$ detect train {tiles} --out {model} --init {base} --weights none --fine-tune all "
        f"--max-minutes {args.mine_minutes:g}",
    )
    if (model / "model.json").is_file():
        console.print(f"{model} is already trained (delete it to train again)")
    else:
        common = dict(fine_tune="all", fine_tune_epochs=30, patience=4, resume=True, weights="none")
        if not (base / "model.json").is_file():
            train(
                TrainConfig(
                    data=str(tiles),
                    out=str(base),
                    input_size=size,
                    cam_layer=args.cam_layer,
                    max_minutes=args.minutes,
                    **common,
                ),
                log=lambda s: console.print(s, highlight=False),
            )
        if not any((tiles / "no-logo").glob("*_nohash_hard_*")):
            base_onnx = out / "model-base.onnx"  # mining scans 260 scenes: the faster backend
            export_model(base, base_onnx, check=False, log=lambda s: None)
            mined = mine_hard_negatives(open_backend(base_onnx), read_box_dataset(out / "train" / "scenes"), tiles)
            console.print(
                f"{mined.windows} windows of {mined.scenes} training scenes: {mined.false_windows} false logo "
                f"windows; {mined.written} added to {mined.out}",
                highlight=False,
            )
        train(
            TrainConfig(data=str(tiles), out=str(model), init=str(base), max_minutes=args.mine_minutes, **common),
            log=lambda s: console.print(s, highlight=False),
        )

    step("3. evaluate the classifier on held-out tiles", f"detect evaluate {model} {out}/train/tiles")
    res = evaluate(model, out / "train" / "tiles", "test")
    console.print(evaluation_table(res.report))
    console.print(confusion_table(res.report))

    onnx_file = out / "model.onnx"
    step("4. export to ONNX (checked against Keras)", f"detect export {model} --out {onnx_file}")
    report = export_model(model, onnx_file, data=out / "train" / "tiles", log=lambda s: None)
    console.print(export_table(report.checks))

    step(
        "5. calibrate the scanner on validation scenes",
        f"detect calibrate {model} {out}/val/scenes --split all --target-precision 0.9",
    )
    backend = open_backend(onnx_file)  # the same numbers as Keras (step 4), at about twice the speed
    cal = calibrate(backend, read_box_dataset(out / "val" / "scenes"), 0.9, "all")
    save_calibration(model, cal)
    for c, t in cal.report["image_thresholds"].items():
        console.print(
            f"{c}: image threshold {t['threshold']:.4g} (validation precision {t['precision']:.3f}, "
            f"recall {t['recall']:.3f}); CAM threshold {cal.cam_threshold:g}, "
            f"join {cal.join_cells:g} cells",
            highlight=False,
        )
    export_model(model, onnx_file, check=False, log=lambda s: None)  # the calibrated values into the file
    console.print(f"{onnx_file} carries the calibrated thresholds", highlight=False)

    step(
        "6. evaluate the scanner on held-out scenes",
        f"detect evaluate {onnx_file} {out}/test/scenes --split all",
    )
    backend = open_backend(onnx_file)
    console.print(scene_table(evaluate_scenes(backend, read_box_dataset(out / "test" / "scenes"), "all").report))

    scans = out / "scans"
    images = list_images([out / "test" / "scenes" / "images"])[:6]
    step(
        "7. scan a few scenes",
        f"detect scan {' '.join(map(str, images[:2]))} ... --model {onnx_file} --boxes --out {scans} --heatmap",
    )
    det = Detector(backend, ScanOptions(heatmap=True))
    writer = ScanWriter(
        OutputOptions(annotated_dir=str(scans), print_boxes=True),
        backend.meta,
        [out / "test" / "scenes" / "images"],
        console=console,
    )
    scan_many(det, images, writer.add, progress=False)
    writer.close()
    console.print(f"annotated images and heatmaps in {scans}/", highlight=False)

    test_images = list_images([out / "test" / "scenes" / "images"])
    step(
        "8. scan every test scene and a short video, and report the brand's exposure",
        f"detect scan {out}/test/scenes/images {out}/video/demo-clip.avi --model {onnx_file} --every 0.5 "
        f"--format jsonl --output {out}/scans/results.jsonl\n"
        f"$ detect report {out}/scans/results.jsonl --out {out}/report",
    )
    report_step(backend, test_images, out, log=lambda s: console.print(s, highlight=False))
    console.print(
        f"demo finished in {(time.monotonic() - t0) / 60:.1f} min; try: detect scan IMAGE --boxes", highlight=False
    )


if __name__ == "__main__":
    main()
