"""Readable tables for the terminal (rich, which Typer already brings)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from detector.data.boxes import BoxDataset
from detector.data.folders import SPLITS, Dataset


def _titled(title: str) -> Table:
    """A table whose title (often a long path) stays on one line: rich wraps a title to the table's
    width, so the table is made at least as wide as the title."""
    return Table(title=escape(title), min_width=len(title) + 4)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def dataset_table(ds: Dataset) -> Table:
    t = _titled(f"{ds.root}  (negative class: {ds.negative_class})")
    t.add_column("class")
    for sp in SPLITS:
        t.add_column(sp, justify="right")
    t.add_column("total", justify="right")
    counts = ds.counts()
    for c in ds.classes:
        row = counts[c]
        t.add_row(c, *(str(row[sp]) for sp in SPLITS), str(sum(row.values())))
    tot = {sp: sum(counts[c][sp] for c in ds.classes) for sp in SPLITS}
    t.add_row("[b]all[/b]", *(str(tot[sp]) for sp in SPLITS), str(sum(tot.values())))
    return t


def evaluation_table(report: dict) -> Table:
    t = _titled(f"{report['model_dir']} on {report['data']} [{report['split']}], {report['n']} images")
    for col in ("class", "precision", "recall", "F1", "AP", "support", "threshold"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for c, m in report["per_class"].items():
        t.add_row(
            c,
            _pct(m["precision"]),
            _pct(m["recall"]),
            _pct(m["f1"]),
            _pct(m["average_precision"]),
            str(m["support"]),
            "-" if m["threshold"] is None else f"{m['threshold']:.3f}",
        )
    any_logo = report["any_logo"]
    t.add_section()
    t.add_row("[b]any logo[/b] (ours)", _pct(any_logo["precision"]), _pct(any_logo["recall"]), "", "", "", "")
    orig = report["original_project"]
    t.add_row("original project", _pct(orig["precision"]), _pct(orig["recall"]), "", "", "", "")
    return t


def confusion_table(report: dict) -> Table:
    cm = report["confusion_matrix"]
    t = Table(title="confusion matrix (rows: true, columns: predicted)")
    t.add_column("")
    for c in cm["labels"]:
        t.add_column(c, justify="right")
    for c, row in zip(cm["labels"], cm["rows_true_cols_pred"], strict=True):
        t.add_row(c, *(str(v) for v in row))
    return t


def box_dataset_table(ds: BoxDataset) -> Table:
    t = _titled(f"{ds.root}  (box dataset)")
    t.add_column("label")
    t.add_column("boxes", justify="right")
    t.add_column("images", justify="right")
    for label in ds.labels:
        n_boxes = sum(b.label == label for r in ds.images for b in r.boxes)
        n_images = sum(any(b.label == label for b in r.boxes) for r in ds.images)
        t.add_row(label, str(n_boxes), str(n_images))
    t.add_section()
    t.add_row("no boxes (negatives)", "", str(sum(not r.boxes for r in ds.images)))
    t.add_row("[b]all[/b]", str(sum(len(r.boxes) for r in ds.images)), str(len(ds.images)))
    return t


def scene_table(rep: dict) -> Table:
    t = _titled(f"scanner on {rep['data']} [{rep['split']}]: {rep['images']} scenes, {rep['boxes']} boxes")
    for col in ("class", "image precision", "image recall", "image AP", "box AP@0.5"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for c, m in rep["image_level"].items():
        t.add_row(
            c,
            _pct(m["precision"]),
            _pct(m["recall"]),
            _pct(m["average_precision"]),
            _pct(rep["box"]["per_class_ap50"].get(c)),
        )
    t.add_section()
    t.add_row("all", "", "", "", _pct(rep["box"]["ap50"]))
    for size, ap in (rep["box"].get("ap50_by_size") or {}).items():
        t.add_row(f"[dim]boxes {size}[/dim]", "", "", "", _pct(ap))
    return t


def export_table(checks: list) -> Table:
    """ONNX file(s) vs Keras on the same tiles (export.onnx_export.Agreement rows)."""
    t = Table(title="ONNX vs Keras on held-back tiles")
    for col in ("precision", "tiles", "max |dprob|", "CAM correlation", "verdict agreement", "ms/tile (ORT)"):
        t.add_column(col, justify="left" if col == "precision" else "right")
    for a in checks:
        t.add_row(
            a.precision,
            str(a.tiles),
            f"{a.max_abs_prob:.1e}",
            f"{a.cam_correlation:.6f}",
            _pct(a.verdict_agreement),
            f"{a.ms_per_tile:.2f}",
        )
    return t
