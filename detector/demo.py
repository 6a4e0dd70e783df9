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


def _arguments(argv: list[str] | None) -> argparse.Namespace:
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
    return p.parse_args(argv)


class _Demo:
    """The demo's steps, in order; each prints the `detect` command that does the same."""

    def __init__(self, args: argparse.Namespace, console: Any) -> None:
        self.args, self.console = args, console
        self.out = Path(args.out)
        self.size = args.input_size
        self.model = self.out / "model"
        self.tiles = self.out / "train" / "tiles"
        self.onnx_file = self.out / "model.onnx"

    def step(self, title: str, cmd: str) -> None:
        self.console.rule(title)
        self.console.print(f"$ {cmd}", highlight=False)

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def synthesize_data(self) -> None:
        from detector.console.tables import dataset_table
        from detector.data.boxes import read_box_dataset
        from detector.data.folders import scan_dataset
        from detector.synth import SynthConfig, synthesize

        out, args = self.out, self.args
        self.step(
            "1. synthesize scenes of the demo logo, and tiles cut from them",
            f"detect synth --out {out}/train --scenes {args.scenes} --seed 1 --tile-size {self.size}",
        )
        if not (self.tiles / "no-logo").is_dir():
            res = synthesize(SynthConfig(out=out / "train", scenes=args.scenes, seed=1, tile_size=self.size))
            self.say(f"{res.scenes} scenes, {res.boxes} boxes, {res.scenes / res.seconds:.0f} scenes/s")
        for name, seed, n in (("val", 2, args.val_scenes), ("test", 3, args.eval_scenes)):
            ann = out / name / "scenes" / "annotations.json"
            if not ann.is_file() or len(read_box_dataset(out / name / "scenes").images) != n:
                shutil.rmtree(out / name, ignore_errors=True)
                synthesize(SynthConfig(out=out / name, scenes=n, seed=seed, tiles=False))
        self.console.print(dataset_table(scan_dataset(self.tiles)))

    def train_model(self) -> None:
        from detector.training import TrainConfig, train

        out, args, tiles, model = self.out, self.args, self.tiles, self.model
        base = out / "model-base"
        self.step(
            "2. train (from scratch: no ImageNet weights offline), mine hard negatives, train again",
            f"detect train {tiles} --out {base} --weights none --input-size {self.size} "
            f"--cam-layer {args.cam_layer} --fine-tune all --max-minutes {args.minutes:g}\n"
            f"$ detect mine {base} {out}/train/scenes --out {tiles}\n"
            f"$ detect train {tiles} --out {model} --init {base} --weights none --fine-tune all "
            f"--max-minutes {args.mine_minutes:g}",
        )
        if (model / "model.json").is_file():
            return self.say(f"{model} is already trained (delete it to train again)")
        common = dict(fine_tune="all", fine_tune_epochs=30, patience=4, resume=True, weights="none")
        log = self.say
        if not (base / "model.json").is_file():
            first = TrainConfig(
                data=str(tiles), out=str(base), input_size=self.size, cam_layer=args.cam_layer,
                max_minutes=args.minutes, **common,
            )  # fmt: skip
            train(first, log=log)
        self.mine(base)
        train(
            TrainConfig(data=str(tiles), out=str(model), init=str(base), max_minutes=args.mine_minutes, **common),
            log=log,
        )

    def mine(self, base: Path) -> None:
        from detector.backends import open_backend
        from detector.data.boxes import read_box_dataset
        from detector.training import mine_hard_negatives
        from export.onnx_export import export_model

        if any((self.tiles / "no-logo").glob("*_nohash_hard_*")):
            return
        base_onnx = self.out / "model-base.onnx"  # mining scans 260 scenes: the faster backend
        export_model(base, base_onnx, check=False, log=lambda s: None)
        mined = mine_hard_negatives(
            open_backend(base_onnx), read_box_dataset(self.out / "train" / "scenes"), self.tiles
        )
        self.say(
            f"{mined.windows} windows of {mined.scenes} training scenes: {mined.false_windows} false logo "
            f"windows; {mined.written} added to {mined.out}"
        )

    def evaluate_and_export(self) -> None:
        from detector.console.tables import confusion_table, evaluation_table, export_table
        from detector.evaluation.tiles import evaluate
        from export.onnx_export import export_model

        self.step("3. evaluate the classifier on held-out tiles", f"detect evaluate {self.model} {self.tiles}")
        res = evaluate(self.model, self.tiles, "test")
        self.console.print(evaluation_table(res.report))
        self.console.print(confusion_table(res.report))
        self.step("4. export to ONNX (checked against Keras)", f"detect export {self.model} --out {self.onnx_file}")
        report = export_model(self.model, self.onnx_file, data=self.tiles, log=lambda s: None)
        self.console.print(export_table(report.checks))

    def calibrate(self) -> None:
        from detector.backends import open_backend
        from detector.data.boxes import read_box_dataset
        from detector.evaluation.calibrate import calibrate, save_calibration
        from export.onnx_export import export_model

        self.step(
            "5. calibrate the scanner on validation scenes",
            f"detect calibrate {self.model} {self.out}/val/scenes --split all --target-precision 0.9",
        )
        backend = open_backend(self.onnx_file)  # the same numbers as Keras (step 4), at about twice the speed
        cal = calibrate(backend, read_box_dataset(self.out / "val" / "scenes"), 0.9, "all")
        save_calibration(self.model, cal)
        for c, t in cal.report["image_thresholds"].items():
            self.say(
                f"{c}: image threshold {t['threshold']:.4g} (validation precision {t['precision']:.3f}, "
                f"recall {t['recall']:.3f}); CAM threshold {cal.cam_threshold:g}, join {cal.join_cells:g} cells"
            )
        export_model(self.model, self.onnx_file, check=False, log=lambda s: None)  # the calibrated values
        self.say(f"{self.onnx_file} carries the calibrated thresholds")

    def scan_and_report(self) -> None:
        from detector.api import Detector
        from detector.backends import open_backend
        from detector.console.tables import scene_table
        from detector.data.boxes import read_box_dataset
        from detector.evaluation.scenes import evaluate_scenes
        from detector.pipeline.options import ScanOptions
        from detector.results.folders import list_images, scan_many
        from detector.results.writer import OutputOptions, ScanWriter

        out, onnx_file = self.out, self.onnx_file
        self.step(
            "6. evaluate the scanner on held-out scenes", f"detect evaluate {onnx_file} {out}/test/scenes --split all"
        )
        backend = open_backend(onnx_file)
        self.console.print(
            scene_table(evaluate_scenes(backend, read_box_dataset(out / "test" / "scenes"), "all").report)
        )
        scans, folder = out / "scans", out / "test" / "scenes" / "images"
        images = list_images([folder])[:6]
        self.step(
            "7. scan a few scenes",
            f"detect scan {' '.join(map(str, images[:2]))} ... --model {onnx_file} --boxes --out {scans} --heatmap",
        )
        writer = ScanWriter(
            OutputOptions(annotated_dir=str(scans), print_boxes=True), backend.meta, [folder], self.console
        )
        scan_many(Detector(backend, ScanOptions(heatmap=True)), images, writer.add, progress=False)
        writer.close()
        self.say(f"annotated images and heatmaps in {scans}/")
        self.step(
            "8. scan every test scene and a short video, and report the brand's exposure",
            f"detect scan {out}/test/scenes/images {out}/video/demo-clip.avi --model {onnx_file} --every 0.5 "
            f"--format jsonl --output {out}/scans/results.jsonl\n"
            f"$ detect report {out}/scans/results.jsonl --out {out}/report",
        )
        report_step(backend, list_images([folder]), out, log=self.say)


def main(argv: list[str] | None = None) -> None:
    """Run the demo's steps; each skips work a previous run already did (delete demo-output to redo)."""
    from rich.console import Console

    from detector.tfquiet import import_tensorflow_quietly

    args = _arguments(argv)
    import_tensorflow_quietly()
    demo, t0 = _Demo(args, Console()), time.monotonic()
    demo.synthesize_data()
    demo.train_model()
    demo.evaluate_and_export()
    demo.calibrate()
    demo.scan_and_report()
    demo.say(f"demo finished in {(time.monotonic() - t0) / 60:.1f} min; try: detect scan IMAGE --boxes")


if __name__ == "__main__":
    main()
