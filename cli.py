"""`detect`: the command line. A thin layer: parse options, call the library, print."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from detector.tfquiet import import_tensorflow_quietly

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


def _fail(e: Exception) -> None:
    if _debug:
        raise e
    err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def data(
    folder: Annotated[str, typer.Argument(help="A dataset folder, or 'import' to import box annotations.")],
    source: Annotated[Path | None, typer.Argument(help="With import: a CSV, COCO JSON or YOLO folder.")] = None,
    negative_class: Annotated[str, typer.Option(help="The folder of photos without any logo.")] = "no-logo",
    check: Annotated[bool, typer.Option(help="Decode every file to find unreadable ones.")] = True,
    fmt: Annotated[
        str | None, typer.Option("--format", help="With import: csv, coco or yolo (default: guess).")
    ] = None,
    images: Annotated[Path | None, typer.Option(help="With import: the image folder.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="With import: the box dataset to write.")] = None,
    unlabelled: Annotated[bool, typer.Option(help="With import: keep images without boxes as negatives.")] = True,
    image_labels: Annotated[
        Path | None, typer.Option(help="With import: CSV file,label; only 'none'/'no-logo' images are negatives.")
    ] = None,
) -> None:
    """Summarize a dataset (class folders or boxes), or `detect data import SRC --out DIR`."""
    from detector.errors import DetectorError

    try:
        if folder == "import":
            _import_boxes(source, fmt, images, out_dir, unlabelled, image_labels)
        else:
            _show_dataset(Path(folder), negative_class, check)
    except DetectorError as e:
        _fail(e)


def _show_dataset(folder: Path, negative_class: str, check: bool) -> None:
    from detector.console.tables import box_dataset_table, dataset_table
    from detector.data.boxes import is_box_dataset, read_box_dataset
    from detector.data.folders import decode_samples, scan_dataset

    if is_box_dataset(folder):
        out.print(box_dataset_table(read_box_dataset(folder)))
        return
    ds = scan_dataset(folder, negative_class)
    skipped = list(ds.skipped)
    if check:
        _, bad = decode_samples(ds.samples, 32, progress="check")
        skipped += bad
    out.print(dataset_table(ds))
    if skipped:
        out.print(f"[yellow]{len(skipped)} file(s) skipped:[/yellow]")
        for path, reason in skipped:
            out.print(f"  {path}: {reason}", highlight=False)
    else:
        out.print("all files readable" if check else "(decode check skipped)")


def _import_boxes(
    source: Path | None,
    fmt: str | None,
    images: Path | None,
    out_dir: Path | None,
    unlabelled: bool,
    image_labels: Path | None,
) -> None:
    from detector.console.tables import box_dataset_table
    from detector.data.boxes import import_box_dataset
    from detector.errors import DatasetError

    if source is None or out_dir is None:
        raise DatasetError("usage: detect data import SOURCE --out DIR [--format csv|coco|yolo] [--images DIR]")
    if fmt is None:
        fmt = "yolo" if source.is_dir() else {".csv": "csv", ".json": "coco"}.get(source.suffix.lower(), "")
        if not fmt:
            raise DatasetError(f"{source}: cannot guess the format; pass --format csv|coco|yolo")
    ds, skipped = import_box_dataset(source, fmt, out_dir, images, unlabelled, image_labels)
    out.print(box_dataset_table(ds))
    for path, reason in skipped:
        out.print(f"  skipped {path}: {reason}", highlight=False)
    out.print(f"box dataset written to {out_dir} (images are symlinks to the originals)", highlight=False)


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for scenes/ and tiles/.")],
    logo: Annotated[
        list[Path] | None,
        typer.Option(help="A logo graphic (PNG with alpha); repeat for several. Default: the demo logo."),
    ] = None,
    backgrounds: Annotated[
        Path | None, typer.Option(help="A folder of photos (default: built-in photos and textures).")
    ] = None,
    distractors: Annotated[Path | None, typer.Option(help="A folder of other logos, drawn as negatives.")] = None,
    scenes: Annotated[int, typer.Option(help="How many scenes.")] = 200,
    seed: Annotated[int, typer.Option()] = 0,
    width: Annotated[int, typer.Option()] = 640,
    height: Annotated[int, typer.Option()] = 480,
    min_logo: Annotated[float, typer.Option(help="Smallest logo, fraction of the short side.")] = 0.03,
    max_logo: Annotated[float, typer.Option(help="Largest logo, fraction of the short side.")] = 0.7,
    max_logos: Annotated[int, typer.Option(help="Most logos in one scene.")] = 3,
    max_rotation: Annotated[float, typer.Option(help="Degrees.")] = 30.0,
    perspective: Annotated[float, typer.Option(help="Corner jitter, fraction of the logo side.")] = 0.12,
    warp: Annotated[float, typer.Option(help="Non-rigid warp amplitude, fraction of the logo side.")] = 0.025,
    occlusion: Annotated[float, typer.Option(help="Probability that a logo is partly covered.")] = 0.25,
    blur: Annotated[float, typer.Option(help="Probability of blur.")] = 0.3,
    brightness: Annotated[float, typer.Option(help="Logo brightness change, +- fraction.")] = 0.25,
    contrast: Annotated[float, typer.Option(help="Logo contrast change, +- fraction.")] = 0.25,
    hue: Annotated[float, typer.Option(help="Logo hue shift, +- OpenCV hue units (0..180).")] = 6.0,
    noise: Annotated[float, typer.Option(help="Largest noise sigma, grey levels.")] = 8.0,
    jpeg_quality: Annotated[str, typer.Option(help="JPEG re-compression quality range, e.g. 35,95.")] = "35,95",
    text: Annotated[str, typer.Option(help="Random text distractors per scene, range, e.g. 0,4.")] = "0,4",
    tile_size: Annotated[int, typer.Option(help="Tile side for the tile dataset (the model's input size).")] = 128,
    tiles: Annotated[bool, typer.Option(help="Also cut the tile dataset.")] = True,
) -> None:
    """Synthesize scenes with logos (boxes as COCO and CSV) and a tile dataset for `detect train`."""
    from tqdm import tqdm

    from detector.data.tilecut import TileRules
    from detector.errors import DetectorError
    from detector.synth.scenes import SceneConfig
    from detector.synth.synthesize import synthesize

    try:
        q_lo, q_hi = (int(v) for v in jpeg_quality.split(","))
        t_lo, t_hi = (int(v) for v in text.split(","))
    except ValueError:
        _fail(DetectorError("--jpeg-quality and --text take two whole numbers, e.g. 35,95"))
    cfg = SceneConfig(
        brightness=brightness,
        contrast=contrast,
        hue=hue,
        max_noise=noise,
        jpeg_quality=(q_lo, q_hi),
        text_distractors=(t_lo, t_hi),
        width=width,
        height=height,
        min_logo=min_logo,
        max_logo=max_logo,
        max_logos=max_logos,
        max_rotation=max_rotation,
        perspective=perspective,
        warp=warp,
        occlusion_probability=occlusion,
        blur_probability=blur,
    )
    bar = tqdm(total=scenes, unit="scene", desc="synth", disable=None)
    try:
        res = synthesize(
            out_dir,
            list(logo or []),
            backgrounds,
            distractors,
            scenes,
            seed,
            cfg,
            TileRules(size=tile_size) if tiles else None,
            progress=lambda n: bar.update(1),
        )
    except DetectorError as e:
        _fail(e)
    finally:
        bar.close()
    out.print(
        f"{res.scenes} scenes with {res.boxes} logo boxes in {res.scenes_dir} "
        f"({res.scenes / res.seconds:.0f} scenes/s)",
        highlight=False,
    )
    if res.tiles_dir:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(res.tiles.items()))
        out.print(f"tiles ({tile_size} px) in {res.tiles_dir}: {counts}", highlight=False)


@app.command()
def train(
    data_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="DATA...",
            help="Class folders or box datasets (real photos, synthetic scenes); several train as one.",
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="The model directory to write.")],
    weights: Annotated[
        str, typer.Option(help="imagenet (Keras download/cache), none, or a weights file PATH.")
    ] = "imagenet",
    input_size: Annotated[
        int | None, typer.Option(help="Tile side in pixels (>= 75). Default: 224 with pretrained weights, 128 without.")
    ] = None,
    cam_layer: Annotated[
        str | None,
        typer.Option(
            help="Inception block feeding the head, mixed0..mixed10. Default: mixed6 pretrained, mixed2 without."
        ),
    ] = None,
    negative_class: Annotated[str, typer.Option()] = "no-logo",
    head_steps: Annotated[int, typer.Option(help="Optimizer steps of the head phase (cached features).")] = 2000,
    learning_rate: Annotated[float, typer.Option(help="The head's peak learning rate (cosine decay).")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay of the head.")] = 1e-4,
    batch_size: Annotated[int, typer.Option()] = 32,
    dropout: Annotated[float, typer.Option()] = 0.5,
    balance: Annotated[str, typer.Option(help="class-weight, upsample or none.")] = "class-weight",
    fine_tune: Annotated[
        str,
        typer.Option(
            help="After the head: auto (top 2 blocks with pretrained weights, none without), none, N, or all."
        ),
    ] = "auto",
    fine_tune_epochs: Annotated[int | None, typer.Option(help="Default 3 pretrained (auto), else 10.")] = None,
    fine_tune_lr: Annotated[float | None, typer.Option(help="Default 1e-4 (1e-3 from scratch).")] = None,
    patience: Annotated[int, typer.Option(help="Early stopping on validation AP.")] = 5,
    random_crop: Annotated[
        float | None, typer.Option(help="Percent of the side that may be cut (auto fine-tune: 10, else 0).")
    ] = None,
    random_scale: Annotated[float | None, typer.Option(help="Percent of extra zoom (auto: 15).")] = None,
    random_brightness: Annotated[float | None, typer.Option(help="Percent brighter or darker (auto: 20).")] = None,
    random_color: Annotated[
        float | None, typer.Option(help="Percent of saturation change, hue a tenth of it (auto: 20).")
    ] = None,
    flip_left_right: Annotated[bool, typer.Option()] = False,
    logdir: Annotated[Path | None, typer.Option(help="TensorBoard summaries here.")] = None,
    resume: Annotated[bool, typer.Option(help="Finish a run that was killed.")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    cache_dir: Annotated[Path | None, typer.Option(help="Bottleneck cache (default ~/.cache/logo-detector).")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Stop after the epoch that passes this.")] = None,
    init: Annotated[
        Path | None, typer.Option(help="Start from this trained model directory (e.g. after `detect mine`).")
    ] = None,
) -> None:
    """Train a logo classifier (Inception v3 transfer learning) on a class-folder dataset."""
    from detector.errors import DetectorError
    from detector.training.train import TrainConfig
    from detector.training.train import train as run_train

    cfg = TrainConfig(
        data=[str(d) for d in data_dirs],
        out=str(out_dir),
        weights=weights,
        input_size=input_size,
        cam_layer=cam_layer,
        negative_class=negative_class,
        head_steps=head_steps,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        batch_size=batch_size,
        dropout=dropout,
        balance=balance,
        fine_tune=fine_tune,
        fine_tune_epochs=fine_tune_epochs,
        fine_tune_lr=fine_tune_lr,
        patience=patience,
        random_crop=random_crop,
        random_scale=random_scale,
        random_brightness=random_brightness,
        random_color=random_color,
        flip_left_right=flip_left_right,
        logdir=str(logdir) if logdir else None,
        resume=resume,
        seed=seed,
        cache_dir=str(cache_dir) if cache_dir else None,
        max_minutes=max_minutes,
        init=str(init) if init else None,
    )
    import_tensorflow_quietly()
    try:
        result = run_train(cfg, log=lambda s: err.print(s, highlight=False))
    except DetectorError as e:
        _fail(e)
    v = result.meta.validation
    ap = v.get("positive_average_precision")
    out.print(
        f"model written to {result.model_dir}  (validation AP of logo classes: "
        f"{'-' if ap is None else f'{ap:.3f}'}; thresholds {result.meta.thresholds})",
        highlight=False,
    )
    if result.skipped:
        out.print(f"[yellow]{len(result.skipped)} file(s) skipped[/yellow] (run `detect data` to list them)")


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A model directory from `detect train`.")],
    data_dir: Annotated[Path, typer.Argument(metavar="DATA", help="Class folders, or a box dataset (scenes).")],
    split: Annotated[str, typer.Option(help="test, val or all.")] = "test",
    target_precision: Annotated[
        float | None, typer.Option(help="Class folders: choose tile thresholds on val for this precision.")
    ] = None,
    level: Annotated[str, typer.Option(help="For a box dataset: scenes (scan them) or tiles.")] = "scenes",
    batch_size: Annotated[int, typer.Option()] = 32,
    report_dir: Annotated[Path | None, typer.Option(help="Default: MODEL_DIR/evaluation.")] = None,
) -> None:
    """Classification metrics on class folders; on a box dataset, image verdicts and box AP of the scanner."""
    from detector.console.tables import confusion_table, evaluation_table
    from detector.data.boxes import is_box_dataset
    from detector.errors import DetectorError
    from detector.evaluation.tiles import evaluate as run_eval

    import_tensorflow_quietly()
    try:
        if is_box_dataset(data_dir) and level == "scenes":
            _evaluate_scenes(model_dir, data_dir, split, batch_size, report_dir)
            return
        res = run_eval(model_dir, data_dir, split, target_precision, batch_size, report_dir)
    except DetectorError as e:
        _fail(e)
    out.print(evaluation_table(res.report))
    out.print(confusion_table(res.report))
    tuning = res.report.get("threshold_tuning")
    if tuning:
        for c, t in tuning["per_class"].items():
            note = "" if t["reached"] else f"  [yellow]target {tuning['target_precision']} not reached on val[/yellow]"
            out.print(f"threshold for {c}: {t['threshold']:.4g} (stored in model.json){note}", highlight=False)
    out.print(f"report: {res.report_path}\nPR curve: {res.pr_curve_path}", highlight=False)


def _evaluate_scenes(model_dir: Path, data_dir: Path, split: str, batch_size: int, report_dir: Path | None) -> None:
    import json

    from detector.backends import open_backend
    from detector.console.tables import scene_table
    from detector.data.boxes import read_box_dataset
    from detector.evaluation.scenes import evaluate_scenes
    from detector.pipeline.scan import ScanOptions

    backend = open_backend(model_dir)
    rep = evaluate_scenes(backend, read_box_dataset(data_dir), split, ScanOptions(batch_size=batch_size)).report
    out.print(scene_table(rep))
    dest = report_dir or (model_dir if model_dir.is_dir() else model_dir.parent) / "evaluation"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"scenes-{data_dir.name}-{split}.json"
    path.write_text(json.dumps(rep, indent=2) + "\n")
    out.print(f"report: {path}", highlight=False)


@app.command()
def mine(
    model: Annotated[Path, typer.Argument(help="A trained model directory or .onnx file.")],
    scenes: Annotated[Path, typer.Argument(help="The training scenes (a box dataset).")],
    tiles: Annotated[Path, typer.Option("--out", help="The class-folder tile dataset to add hard negatives to.")],
    per_scene: Annotated[int, typer.Option(help="At most this many false windows per scene.")] = 6,
    split: Annotated[str, typer.Option(help="Scenes to mine: all, train, val or test (by name hash).")] = "all",
) -> None:
    """Add the windows the model wrongly calls a logo to the negative class; then `detect train --init`."""
    from detector.backends import open_backend
    from detector.data.boxes import read_box_dataset
    from detector.errors import DetectorError
    from detector.training.mining import mine_hard_negatives

    if model.suffix.lower() != ".onnx":
        import_tensorflow_quietly()
    try:
        rep = mine_hard_negatives(open_backend(model), read_box_dataset(scenes), tiles, split, per_scene)
    except DetectorError as e:
        _fail(e)
    out.print(
        f"{rep.scenes} scenes, {rep.windows} windows: {rep.false_windows} false logo windows; "
        f"wrote {rep.written} hard negatives to {rep.out}",
        highlight=False,
    )


@app.command()
def calibrate(
    model_dir: Annotated[Path, typer.Argument(help="A model directory from `detect train`.")],
    scenes: Annotated[Path, typer.Argument(help="A box dataset of validation scenes (`detect synth` or import).")],
    target_precision: Annotated[float, typer.Option(help="Image-level precision to reach.")] = 0.9,
    split: Annotated[str, typer.Option(help="Scenes to calibrate on: val (by name hash) or all.")] = "val",
    fallback_scenes: Annotated[
        Path | None,
        typer.Option(
            help="Scenes (e.g. synthetic ones of the brands) for the box calibration when SCENES has too few boxes."
        ),
    ] = None,
) -> None:
    """Choose the image-level thresholds, the CAM threshold and the box calibration on whole scenes; store them in
    model.json."""
    from detector.backends import open_backend
    from detector.data.boxes import read_box_dataset
    from detector.errors import DetectorError
    from detector.evaluation.scenes import calibrate as calibrate_scenes
    from detector.model.store import update_meta

    import_tensorflow_quietly()
    try:
        backend = open_backend(model_dir, "keras")
        fallback = read_box_dataset(fallback_scenes) if fallback_scenes else None
        cal = calibrate_scenes(backend, read_box_dataset(scenes), target_precision, split, fallback=fallback)
        meta = backend.meta
        validation = dict(meta.validation)
        validation["calibration"] = cal
        update_meta(
            model_dir,
            image_thresholds=meta.image_thresholds,
            cam_threshold=meta.cam_threshold,
            join_cells=meta.join_cells,
            box_calibration=meta.box_calibration,
            validation=validation,
        )
    except DetectorError as e:
        _fail(e)
    for c, t in cal["image_thresholds"].items():
        note = "" if t["reached"] else "  [yellow](target not reached)[/yellow]"
        out.print(
            f"{c}: image threshold {t['threshold']:.4g} -> precision {t['precision']:.3f}, "
            f"recall {t['recall']:.3f} on {cal['images']} {split} scenes{note}",
            highlight=False,
        )
    ap = max(cal["ap50_by_join_and_cam_threshold"].values())
    out.print(
        f"CAM threshold {cal['cam_threshold']:g}, fragments joined within {cal['join_cells']:g} map cells "
        f"(box AP@0.5 {ap:.3f} on these scenes)",
        highlight=False,
    )
    if cal.get("box_calibration_source"):
        out.print(f"box calibration fitted on the {cal['box_calibration_source']}", highlight=False)
    out.print(f"stored in {model_dir / 'model.json'}", highlight=False)


@app.command()
def export(
    model_dir: Annotated[Path, typer.Argument(help="The model directory to export.")],
    out_file: Annotated[Path, typer.Option("--out", help="The .onnx file to write.")],
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    quantize: Annotated[
        str,
        typer.Option(help="none (fp32), fp16, int8 (static QDQ), or auto: int8 where it agrees and is faster here."),
    ] = "none",
    data: Annotated[
        Path | None,
        typer.Option(help="Tiles or scenes: int8 calibrates on its train split, checks run on val+test."),
    ] = None,
    check: Annotated[bool, typer.Option(help="Compare the file with Keras on sample tiles.")] = True,
) -> None:
    """Export a model to one self-describing ONNX file (scores, CAMs, metadata), checked against Keras."""
    from detector.errors import DetectorError

    import_tensorflow_quietly()
    from export.onnx_export import export_model

    try:
        report = export_model(
            model_dir, out_file, opset, quantize, data, check, log=lambda s: err.print(s, highlight=False)
        )
    except DetectorError as e:
        _fail(e)
    from detector.console.tables import export_table

    if report.checks:
        out.print(export_table(report.checks))
    out.print(
        f"wrote {report.path} ({report.precision}, {report.size_bytes / 1e6:.1f} MB) in {report.seconds:.0f} s",
        highlight=False,
    )


@app.command()
def scan(
    inputs: Annotated[list[Path], typer.Argument(metavar="IMAGE_OR_DIR...", help="Images and/or folders.")],
    model: Annotated[
        Path | None, typer.Option(help="Model directory or .onnx file (default: $DETECT_MODEL, else the demo model).")
    ] = None,
    backend: Annotated[str, typer.Option(help="auto, keras or onnx.")] = "auto",
    boxes: Annotated[bool, typer.Option("--boxes", help="Print the boxes.")] = False,
    heatmap: Annotated[bool, typer.Option("--heatmap", help="With --out: also write heatmap overlays.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write annotated images here.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, json, jsonl, csv or coco.")] = "text",
    output: Annotated[Path | None, typer.Option(help="Write results to this file (default: stdout).")] = None,
    resume: Annotated[bool, typer.Option(help="With --output x.jsonl: skip images already in it.")] = False,
    glob: Annotated[str | None, typer.Option(help="Pattern for files in folders, e.g. '*.jpg'.")] = None,
    scales: Annotated[str | None, typer.Option(help="Pyramid scales, e.g. '1,0.5,0.25'.")] = None,
    min_logo: Annotated[float | None, typer.Option(help="Smallest logo to look for, pixels.")] = None,
    max_logo: Annotated[float | None, typer.Option(help="Largest logo to look for, pixels.")] = None,
    overlap: Annotated[float, typer.Option(help="Tile overlap.")] = 0.5,
    batch_size: Annotated[int, typer.Option()] = 32,
    cam_threshold: Annotated[float | None, typer.Option(help="Box pixels: this fraction of a tile map's peak.")] = None,
    cam_method: Annotated[str, typer.Option(help="gradcam or gradcam++.")] = "gradcam",
    merge: Annotated[str, typer.Option(help="Boxes across pyramid levels: nms, fuse or finest.")] = "nms",
    box_calibration: Annotated[
        bool, typer.Option(help="Apply the box size correction and box scores `detect calibrate` fitted.")
    ] = True,
    mode: Annotated[
        str, typer.Option(help="tiles (cut every window) or dense (one backbone pass per pyramid level, faster).")
    ] = "tiles",
    max_pixels: Annotated[int, typer.Option(help="Refuse larger images (decompression bombs).")] = 100_000_000,
    max_file_mb: Annotated[float, typer.Option(help="Refuse larger files, from stat, before reading them.")] = 256.0,
    max_upscale: Annotated[float, typer.Option(help="No pyramid level enlarges the image more than this.")] = 2.0,
    max_windows: Annotated[
        int, typer.Option(help="Windows per image, all levels; a default pyramid over it is coarsened to fit.")
    ] = 512,
    workers: Annotated[int, typer.Option(help="Decoding threads.")] = 2,
    every: Annotated[
        float | None, typer.Option(help="Videos: scan one frame every this many seconds (default 1).")
    ] = None,
    fps: Annotated[
        float | None, typer.Option(help="Videos: scan this many frames per second (instead of --every).")
    ] = None,
    max_frames: Annotated[int | None, typer.Option(help="Videos: scan at most this many frames of each.")] = None,
) -> None:
    """Find logos in images, videos and folders: verdicts, scores and boxes (multi-scale tiles + Grad-CAM).

    Videos (.mp4, .mov, .avi, .mkv, .webm, ...) are sampled: one record per sampled frame, then one
    record per appearance of a brand on screen and one closing record per video.

    Exit code: 0 every image scanned, 1 some images failed (each has an error record), 2 a usage or
    model error (nothing scanned)."""
    from detector.api import Detector
    from detector.errors import DetectorError
    from detector.pipeline.options import check_int, check_number, parse_scales
    from detector.pipeline.scan import ScanOptions
    from detector.results.folders import MAX_WORKERS, list_images, scan_many
    from detector.video.decode import Sampling

    try:
        sampling = Sampling.from_options(every, fps, max_frames)
        if fmt not in ("text", "json", "jsonl", "csv", "coco"):
            raise DetectorError("format must be text, json, jsonl, csv or coco")
        if resume and (output is None or fmt != "jsonl"):
            raise DetectorError("--resume needs --format jsonl and --output FILE (the results written so far)")
        check_int("workers", workers, 1, MAX_WORKERS)
        max_file_bytes = int(check_number("max_file_mb", max_file_mb, 0.001, 2**30) * 2**20)
        opts = ScanOptions(
            scales=parse_scales(scales) if scales else None,
            min_logo=min_logo,
            max_logo=max_logo,
            overlap=overlap,
            batch_size=batch_size,
            boxes=True,
            heatmap=heatmap and out_dir is not None,
            cam_threshold=cam_threshold,
            cam_method=cam_method,
            merge=merge,
            mode=mode,
            calibrated_boxes=box_calibration,
            max_upscale=max_upscale,
            max_windows=max_windows,
        )
        if backend != "onnx" and (model is None or model.suffix.lower() != ".onnx"):
            import_tensorflow_quietly()
        det = Detector.load(model, backend, opts, max_pixels, max_file_bytes=max_file_bytes)
        paths = list_images(inputs, glob)
        if not paths:
            raise DetectorError("no images or videos found in the given paths")
    except DetectorError as e:
        _fail(e)
    from detector.results.writer import ScanWriter

    try:
        writer = ScanWriter(
            fmt, output, out_dir, inputs, det.meta, show_boxes=boxes, append=resume, console=out, single=len(paths) == 1
        )
        if writer.repaired:
            err.print(f"{output}: cut a torn last line ({writer.repaired} bytes) before appending", highlight=False)
        summary = scan_many(
            det,
            paths,
            writer.add,
            resume_from=output if resume else None,
            workers=workers,
            progress=len(paths) > 1,
            sampling=sampling,
            on_record=writer.add_record,
        )
        writer.close()
    except OSError as e:  # the output cannot be written (disk full, permissions): one line, not a traceback
        _fail(DetectorError(f"cannot write the results: {e.strerror or e} ({e.filename or output})"))
    if len(paths) > 1 or summary.errors or summary.videos or summary.skipped_done:
        per = ", ".join(f"{k} {v}" for k, v in sorted(summary.per_label.items())) or "none"
        vids = f", {summary.frames} of them frames of {summary.videos} video(s)" if summary.videos else ""
        err.print(
            f"scanned {summary.images} image(s){vids} ({summary.skipped_done} already done): "
            f"{summary.with_logo} with a logo ({per}), {summary.errors} error(s)",
            highlight=False,
        )
    raise typer.Exit(1 if summary.errors else 0)


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(metavar="RESULTS.jsonl", help="JSONL files from `detect scan`.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for index.html, summary.csv and summary.json.")],
    images: Annotated[
        Path | None, typer.Option(help="Where the scanned files are, when their recorded paths do not resolve.")
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(help="What 'over time' means for photos: a record FIELD, 'path:REGEX' or 'exif:date'."),
    ] = None,
    gallery: Annotated[int, typer.Option(help="N: the top-N and N borderline detections per brand.")] = 8,
    threshold: Annotated[
        float, typer.Option(help="Image threshold for records that do not carry theirs (older results).")
    ] = 0.5,
) -> None:
    """Brand exposure report from scan results: per-brand table, plots, a gallery and errors, as one offline page."""
    from detector.errors import DetectorError
    from detector.pipeline.options import check_int, check_number
    from detector.report import build

    try:
        check_int("gallery", gallery, 0, 200)
        check_number("threshold", threshold, 0.0, 1.0)
        missing = [str(p) for p in results if not p.is_file()]
        if len(missing) == len(results):
            raise DetectorError(f"no results file can be read: {', '.join(missing)}")
        rep = build(results, by=by, gallery=gallery, default_threshold=threshold)
        files = rep.write(out_dir, images)
    except DetectorError as e:
        _fail(e)
    except OSError as e:
        _fail(DetectorError(f"cannot write the report: {e.strerror or e} ({e.filename or out_dir})"))
    t = rep.totals
    out.print(
        f"{t['photos']:,} photo(s), {t['frames']:,} frame(s), {t['detections']:,} detection(s), "
        f"{len(rep.brands)} brand(s), {t['errors']:,} error record(s) -> {files['html']}",
        highlight=False,
    )
    for p in rep.problems:
        err.print(f"[yellow]warning:[/yellow] {p}", highlight=False, soft_wrap=True)


@app.command()
def serve(
    model: Annotated[
        Path | None, typer.Option(help="Model directory or .onnx file (default: $DETECT_MODEL, else the demo model).")
    ] = None,
    backend: Annotated[str, typer.Option(help="auto, keras or onnx.")] = "auto",
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="DETECT_API_KEY", help="Require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' on /v1/*."),
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest file (image or zip) in MB; larger: 413.")] = 20.0,
    max_files: Annotated[int, typer.Option(help="Most files in one request (zip members included).")] = 100,
    max_pixels: Annotated[int, typer.Option(help="Refuse larger images (decompression bombs): 413.")] = 100_000_000,
    max_batch: Annotated[int, typer.Option(help="Most tiles in one shared model call.")] = 128,
    model_calls: Annotated[
        str,
        typer.Option(
            help="batched: merge concurrent requests' tiles into shared model calls (micro-batching); "
            "serial: one call at a time; concurrent: each request calls the model itself."
        ),
    ] = "batched",
    max_windows: Annotated[int, typer.Option(help="Windows per image; requests may ask for fewer, not more.")] = 512,
    max_queue: Annotated[int, typer.Option(help="Requests scanning at once; more get 503 + Retry-After.")] = 32,
    scan_threads: Annotated[int, typer.Option(help="Images decoded/tiled/scanned at once.")] = 8,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log")] = True,
) -> None:
    """Serve the scanner over HTTP: REST API (/v1/scan, /v1/scan/batch, /v1/model), docs at /docs, a page at /."""
    from detector.errors import DetectorError
    from detector.serve.config import ServeConfig
    from detector.serve.server import serve as run_server

    config = ServeConfig(
        model=model,
        backend=backend,
        host=host,
        port=port,
        api_key=api_key or None,
        max_upload_mb=max_upload_mb,
        max_files=max_files,
        max_pixels=max_pixels,
        model_calls=model_calls,
        max_batch=max_batch,
        max_queue=max_queue,
        scan_threads=scan_threads,
        max_windows=max_windows,
    )
    try:
        config.validate()
        if backend != "onnx" and (model is None or model.suffix.lower() != ".onnx"):
            import_tensorflow_quietly()
        run_server(config, access_log=access_log)
    except DetectorError as e:
        _fail(e)


def run() -> None:
    app(prog_name="detect")


if __name__ == "__main__":
    sys.exit(run())
