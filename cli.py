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
out = Console()
err = Console(stderr=True)
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
    folder: Annotated[Path, typer.Argument(help="A folder of class subfolders.")],
    negative_class: Annotated[str, typer.Option(help="The folder of photos without any logo.")] = "no-logo",
    check: Annotated[bool, typer.Option(help="Decode every file to find unreadable ones.")] = True,
) -> None:
    """Count images per class and split, and list files that cannot be read."""
    from detector.data import decode_samples, scan_dataset
    from detector.errors import DetectorError
    from detector.tables import dataset_table

    try:
        ds = scan_dataset(folder, negative_class)
    except DetectorError as e:
        _fail(e)
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


@app.command()
def train(
    data_dir: Annotated[Path, typer.Argument(metavar="DATA", help="A folder of class subfolders.")],
    out_dir: Annotated[Path, typer.Option("--out", help="The model directory to write.")],
    weights: Annotated[
        str, typer.Option(help="imagenet (Keras download/cache), none, or a weights file PATH.")
    ] = "imagenet",
    input_size: Annotated[int, typer.Option(help="Tile side in pixels (>= 75).")] = 299,
    cam_layer: Annotated[str, typer.Option(help="Inception block feeding the head (mixed0..mixed10).")] = "mixed10",
    negative_class: Annotated[str, typer.Option()] = "no-logo",
    epochs: Annotated[int, typer.Option(help="Most epochs of the head phase.")] = 30,
    learning_rate: Annotated[float, typer.Option()] = 1e-3,
    batch_size: Annotated[int, typer.Option()] = 32,
    dropout: Annotated[float, typer.Option()] = 0.5,
    balance: Annotated[str, typer.Option(help="class-weight, upsample or none.")] = "class-weight",
    fine_tune: Annotated[str | None, typer.Option(help="Unfreeze the top N blocks after the head, or 'all'.")] = None,  # noqa: UP007
    fine_tune_epochs: Annotated[int, typer.Option()] = 10,
    fine_tune_lr: Annotated[float | None, typer.Option(help="Default 1e-4 (1e-3 from scratch).")] = None,  # noqa: UP007
    patience: Annotated[int, typer.Option(help="Early stopping on validation AP.")] = 5,
    random_crop: Annotated[float, typer.Option(help="Percent of the side that may be cut.")] = 0.0,
    random_scale: Annotated[float, typer.Option(help="Percent of extra zoom.")] = 0.0,
    random_brightness: Annotated[float, typer.Option(help="Percent brighter or darker.")] = 0.0,
    flip_left_right: Annotated[bool, typer.Option()] = False,
    logdir: Annotated[Path | None, typer.Option(help="TensorBoard summaries here.")] = None,  # noqa: UP007
    resume: Annotated[bool, typer.Option(help="Finish a run that was killed.")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    cache_dir: Annotated[Path | None, typer.Option(help="Bottleneck cache (default ~/.cache/logo-detector).")] = None,  # noqa: UP007
    max_minutes: Annotated[float | None, typer.Option(help="Stop after the epoch that passes this.")] = None,  # noqa: UP007
) -> None:
    """Train a logo classifier (Inception v3 transfer learning) on a class-folder dataset."""
    from detector.errors import DetectorError
    from detector.train import TrainConfig
    from detector.train import train as run_train

    cfg = TrainConfig(
        data=str(data_dir),
        out=str(out_dir),
        weights=weights,
        input_size=input_size,
        cam_layer=cam_layer,
        negative_class=negative_class,
        epochs=epochs,
        learning_rate=learning_rate,
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
        flip_left_right=flip_left_right,
        logdir=str(logdir) if logdir else None,
        resume=resume,
        seed=seed,
        cache_dir=str(cache_dir) if cache_dir else None,
        max_minutes=max_minutes,
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
    data_dir: Annotated[Path, typer.Argument(metavar="DATA", help="A folder of class subfolders.")],
    split: Annotated[str, typer.Option(help="test, val or all.")] = "test",
    target_precision: Annotated[
        float | None, typer.Option(help="Choose thresholds on val for this precision and store them.")
    ] = None,  # noqa: UP007,E501
    batch_size: Annotated[int, typer.Option()] = 32,
    report_dir: Annotated[Path | None, typer.Option(help="Default: MODEL_DIR/evaluation.")] = None,  # noqa: UP007
) -> None:
    """Precision, recall, F1, AP and the confusion matrix; a PR-curve PNG and a JSON report."""
    from detector.errors import DetectorError
    from detector.evaluate import evaluate as run_eval
    from detector.tables import confusion_table, evaluation_table

    import_tensorflow_quietly()
    try:
        res = run_eval(model_dir, data_dir, split, target_precision, batch_size, report_dir)
    except DetectorError as e:
        _fail(e)
    out.print(evaluation_table(res.report))
    out.print(confusion_table(res.report))
    tuning = res.report.get("threshold_tuning")
    if tuning:
        for c, t in tuning["per_class"].items():
            note = "" if t["reached"] else f"  [yellow]target {tuning['target_precision']} not reached on val[/yellow]"
            out.print(f"threshold for {c}: {t['threshold']:.4f} (stored in model.json){note}", highlight=False)
    out.print(f"report: {res.report_path}\nPR curve: {res.pr_curve_path}", highlight=False)


def run() -> None:
    app(prog_name="detect")


if __name__ == "__main__":
    sys.exit(run())
