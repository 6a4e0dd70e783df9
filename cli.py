"""`detect`: the command line. A thin shell: flags come from the library's option declarations
(detector.options, detector.console.flags), each command calls one library function and prints what
detector.console.summaries says; one error handler turns every library error into one line."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from detector.backends import ModelSource
from detector.console.flags import with_flags
from detector.engines import EngineOptions, ScanJob
from detector.engines.ray_options import RayOptions
from detector.errors import DetectorError
from detector.images import ImageLimits
from detector.pipeline.options import ScanOptions
from detector.results.folders import FolderOptions
from detector.results.writer import OutputOptions
from detector.serve.config import ServeConfig
from detector.synth.scenes import SceneConfig
from detector.synth.synthesize import SynthConfig
from detector.tfquiet import quiet_when_imported
from detector.training.config import TrainConfig
from detector.video.decode import VideoOptions
from detector.web import WebExport

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    name="detect",
    help="Find brand logos in photos and say where they are.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped output is read by programs and logs: do not wrap tables at 80 columns there.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)
_debug = False


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False) -> None:
    global _debug
    _debug = debug


def command(fn: Any) -> Any:
    """Register `fn` with its declared flags; the one error handler: a library error is one line, exit 2.
    TensorFlow, where a command needs it, is imported without its start-up chatter when first used
    (`quiet_when_imported`), so argument errors come before its seconds-long import."""
    expanded = with_flags(fn)

    @functools.wraps(expanded)
    def guarded(**kw: Any) -> Any:
        quiet_when_imported()
        try:
            return expanded(**kw)
        except DetectorError as e:
            if _debug:
                raise
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as e:  # an output that cannot be written (disk full, permissions): one line
            if _debug:
                raise
            err.print(
                f"[red]error:[/red] cannot write {e.filename or 'the output'}: {e.strerror or e}", highlight=False
            )
            raise typer.Exit(2) from None

    return app.command()(guarded)


def say(lines: list[str] | str, console: Console = out) -> None:
    for line in [lines] if isinstance(lines, str) else lines:
        console.print(line, highlight=False, soft_wrap=True)


Arg = typer.Argument
Opt = typer.Option


@command
def data(
    folder: Annotated[str, Arg(help="A dataset folder, or 'import' to import box annotations.")],
    source: Annotated[Path | None, Arg(help="With import: a CSV, COCO JSON or YOLO folder.")] = None,
    negative_class: Annotated[str, Opt(help="The folder of photos without any logo.")] = "no-logo",
    check: Annotated[bool, Opt(help="Decode every file to find unreadable ones.")] = True,
    fmt: Annotated[str | None, Opt("--format", help="With import: csv, coco or yolo (default: guess).")] = None,
    images: Annotated[Path | None, Opt(help="With import: the image folder.")] = None,
    out_dir: Annotated[Path | None, Opt("--out", help="With import: the box dataset to write.")] = None,
    unlabelled: Annotated[bool, Opt(help="With import: keep images without boxes as negatives.")] = True,
    image_labels: Annotated[
        Path | None, Opt(help="With import: CSV file,label; only 'none'/'no-logo' images are negatives.")
    ] = None,
) -> None:
    """Summarize a dataset (class folders or boxes), or `detect data import SRC --out DIR`."""
    from detector.console import summaries
    from detector.console.tables import box_dataset_table, dataset_table
    from detector.data.boxes import import_box_dataset, is_box_dataset, read_box_dataset
    from detector.data.folders import decode_samples, scan_dataset

    if folder == "import":
        if source is None or out_dir is None:
            raise DetectorError("usage: detect data import SOURCE --out DIR [--format csv|coco|yolo] [--images DIR]")
        ds, skipped = import_box_dataset(source, fmt, out_dir, images, unlabelled, image_labels)
        out.print(box_dataset_table(ds))
        return say(summaries.imported(skipped, out_dir))
    if is_box_dataset(Path(folder)):
        return out.print(box_dataset_table(read_box_dataset(Path(folder))))
    ds = scan_dataset(Path(folder), negative_class)
    skipped = list(ds.skipped) + (decode_samples(ds.samples, 32, progress="check")[1] if check else [])
    out.print(dataset_table(ds))
    say(summaries.dataset_skipped(skipped, check))


@command
def synth(cfg: SynthConfig, scene: SceneConfig) -> None:
    """Synthesize scenes with logos (boxes as COCO and CSV) and a tile dataset for `detect train`."""
    from dataclasses import replace

    from tqdm import tqdm

    from detector.console import summaries
    from detector.synth.synthesize import synthesize

    with tqdm(total=cfg.scenes, unit="scene", desc="synth", disable=None) as bar:
        res = synthesize(replace(cfg, scene=scene), progress=lambda n: bar.update(1))
    say(summaries.synthesized(res, cfg.tile_size))


@command
def train(cfg: TrainConfig) -> None:
    """Train a logo classifier (Inception v3 transfer learning) on class folders or box datasets."""
    from detector.console import summaries
    from detector.training import train as run_train

    say(summaries.trained(run_train(cfg, log=lambda s: err.print(s, highlight=False))))


@command
def evaluate(
    model_dir: Annotated[Path, Arg(help="A model directory from `detect train`, or an .onnx file.")],
    data_dir: Annotated[Path, Arg(metavar="DATA", help="Class folders, or a box dataset (scenes).")],
    split: Annotated[str, Opt(help="test, val or all.")] = "test",
    target_precision: Annotated[
        float | None, Opt(help="Class folders: choose tile thresholds on val for this precision.")
    ] = None,
    level: Annotated[str, Opt(help="For a box dataset: scenes (scan them) or tiles.")] = "scenes",
    batch_size: Annotated[int, Opt()] = 32,
    report_dir: Annotated[Path | None, Opt(help="Default: MODEL_DIR/evaluation.")] = None,
) -> None:
    """Classification metrics on class folders; on a box dataset, image verdicts and box AP of the scanner."""
    from detector.backends import open_backend
    from detector.console import summaries
    from detector.console.tables import confusion_table, evaluation_table, scene_table
    from detector.data.boxes import is_box_dataset, read_box_dataset
    from detector.evaluation.scenes import evaluate_scenes, write_scene_report
    from detector.evaluation.tiles import evaluate as evaluate_tiles

    if is_box_dataset(data_dir) and level == "scenes":
        opts = ScanOptions(batch_size=batch_size)
        rep = evaluate_scenes(open_backend(model_dir), read_box_dataset(data_dir), split, opts).report
        out.print(scene_table(rep))
        return say(f"report: {write_scene_report(rep, model_dir, data_dir, split, report_dir)}")
    res = evaluate_tiles(model_dir, data_dir, split, target_precision, batch_size, report_dir)
    out.print(evaluation_table(res.report))
    out.print(confusion_table(res.report))
    say([*summaries.tuned_thresholds(res.report), f"report: {res.report_path}", f"PR curve: {res.pr_curve_path}"])


@command
def mine(
    model: Annotated[Path, Arg(help="A trained model directory or .onnx file.")],
    scenes: Annotated[Path, Arg(help="The training scenes (a box dataset).")],
    tiles: Annotated[Path, Opt("--out", help="The class-folder tile dataset to add hard negatives to.")],
    per_scene: Annotated[int, Opt(help="At most this many false windows per scene.")] = 6,
    split: Annotated[str, Opt(help="Scenes to mine: all, train, val or test (by name hash).")] = "all",
) -> None:
    """Add the windows the model wrongly calls a logo to the negative class; then `detect train --init`."""
    from detector.backends import open_backend
    from detector.console import summaries
    from detector.data.boxes import read_box_dataset
    from detector.training.mining import mine_hard_negatives

    say(summaries.mined(mine_hard_negatives(open_backend(model), read_box_dataset(scenes), tiles, split, per_scene)))


@command
def calibrate(
    model_dir: Annotated[Path, Arg(help="A model directory from `detect train`.")],
    scenes: Annotated[Path, Arg(help="A box dataset of validation scenes (`detect synth` or import).")],
    target_precision: Annotated[float, Opt(help="Image-level precision to reach.")] = 0.9,
    split: Annotated[str, Opt(help="Scenes to calibrate on: val (by name hash) or all.")] = "val",
    fallback_scenes: Annotated[
        Path | None,
        Opt(help="Scenes (e.g. synthetic ones of the brands) for the box calibration when SCENES has too few."),
    ] = None,
) -> None:
    """Choose the image thresholds, the CAM threshold and the box calibration on whole scenes; store them."""
    from detector.backends import open_backend
    from detector.console import summaries
    from detector.data.boxes import read_box_dataset
    from detector.evaluation.calibrate import calibrate as run_calibrate
    from detector.evaluation.calibrate import save_calibration

    fallback = read_box_dataset(fallback_scenes) if fallback_scenes else None
    backend = open_backend(model_dir, "keras")
    cal = run_calibrate(backend, read_box_dataset(scenes), target_precision, split, fallback=fallback)
    save_calibration(model_dir, cal)
    say([*summaries.calibrated(cal.report, split), f"stored in {model_dir / 'model.json'}"])


@command
def export(
    model_dir: Annotated[Path, Arg(help="The model directory to export.")],
    out_file: Annotated[Path, Opt("--out", help="The .onnx file to write.")],
    opset: Annotated[int, Opt(help="ONNX opset.")] = 17,
    quantize: Annotated[
        str, Opt(help="none (fp32), fp16, int8 (static QDQ), or auto: int8 where it agrees and is faster here.")
    ] = "none",
    data: Annotated[
        Path | None, Opt(help="Tiles or scenes: int8 calibrates on its train split, checks run on val+test.")
    ] = None,
    check: Annotated[bool, Opt(help="Compare the file with Keras on sample tiles.")] = True,
) -> None:
    """Export a model to one self-describing ONNX file (scores, CAMs, metadata), checked against Keras."""
    from detector.console import summaries
    from detector.console.tables import export_table
    from export.onnx_export import export_model

    report = export_model(
        model_dir, out_file, opset, quantize, data, check, log=lambda s: err.print(s, highlight=False)
    )
    if report.checks:
        out.print(export_table(report.checks))
    say(summaries.exported(report))


@command
def export_web(site: WebExport) -> None:
    """Write a static site that scans photos in the browser (onnxruntime-web): no photo leaves the device."""
    from detector.web import export_web as build

    say(build(site, log=lambda s: err.print(s, highlight=False)).summary())


@command
def scan(
    inputs: Annotated[list[Path], Arg(metavar="IMAGE_OR_DIR...", help="Images, videos and/or folders.")],
    source: ModelSource,
    options: ScanOptions,
    limits: ImageLimits,
    folders: FolderOptions,
    output: OutputOptions,
    video: VideoOptions,
    engine: EngineOptions,
    ray: RayOptions,
) -> None:
    """Find logos in images, videos and folders: verdicts, scores and boxes (multi-scale tiles + Grad-CAM).

    Videos (.mp4, .mov, .avi, .mkv, .webm, ...) are sampled: one record per sampled frame, then one
    record per appearance of a brand on screen and one closing record per video.

    Exit code: 0 every image scanned, 1 some images failed (each has an error record), 2 a usage or
    model error (nothing scanned)."""
    from dataclasses import replace

    from detector.console import summaries
    from detector.engines import run_job

    options = replace(options, heatmap=options.heatmap and output.annotated_dir is not None)
    job = ScanJob(inputs, source, options, limits, folders, output, video, ray)
    summary = run_job(job, engine, out)
    if summary.images > 1 or summary.errors or summary.videos or summary.skipped_done:
        say(summaries.scanned(summary), err)
    raise typer.Exit(1 if summary.errors else 0)


@command
def report(
    results: Annotated[list[Path], Arg(metavar="RESULTS.jsonl", help="JSONL files from `detect scan`.")],
    out_dir: Annotated[Path, Opt("--out", help="Folder for index.html, summary.csv and summary.json.")],
    images: Annotated[
        Path | None, Opt(help="Where the scanned files are, when their recorded paths do not resolve.")
    ] = None,
    by: Annotated[
        str | None, Opt(help="What 'over time' means for photos: a record FIELD, 'path:REGEX' or 'exif:date'.")
    ] = None,
    gallery: Annotated[int, Opt(help="N: the top-N and N borderline detections per brand.")] = 8,
    threshold: Annotated[
        float, Opt(help="Image threshold for records that do not carry theirs (older results).")
    ] = 0.5,
) -> None:
    """Brand exposure report from scan results: per-brand table, plots, a gallery and errors, as one offline page."""
    from detector.console import summaries
    from detector.report import build

    rep = build(results, by=by, gallery=gallery, default_threshold=threshold)
    say(summaries.reported(rep, rep.write(out_dir, images)))
    say([f"[yellow]warning:[/yellow] {p}" for p in rep.problems], err)


@command
def serve(
    source: ModelSource,
    config: ServeConfig,
    access_log: Annotated[bool, Opt("--access-log/--no-access-log")] = True,
) -> None:
    """Serve the scanner over HTTP: REST API (/v1/scan, /v1/scan/batch, /v1/model), docs at /docs, a page at /."""
    from detector.serve.server import serve as run_server

    run_server(source, config, access_log=access_log)


def run() -> None:
    app(prog_name="detect")


if __name__ == "__main__":
    sys.exit(run())
