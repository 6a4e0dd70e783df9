"""Shared by the cross-language tests (tests/test_node_example.py, tests/test_web.py): the session
model with a real calibration in its metadata, scenes as PNG, and the comparison of a JavaScript
scan record with Python's scan of the same file.

The calibration is `detect calibrate`'s own function run on the ONNX backend over the session
scenes' validation split, written into a copy of the exported file (as the demo re-exports after
calibrating), so the JavaScript box calibration (size correction and scorer) is exercised for real.
PNG, because a PNG decodes to the same pixels everywhere; JPEG decoders differ by a grey level here
and there.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2

from detector.geometry import Detection, iou
from detector.results.record import ScanResult

IOU_MIN = 0.9
SCORE_TOLERANCE = 1e-3


def calibrated_copy(onnx_path: Path, scenes: Path, out: Path) -> Path:
    """`out`: the ONNX file with calibrated image thresholds, CAM threshold, joining and box calibration.

    Written once per test session (a second caller finds the file), so two test modules share it."""
    if out.is_file():
        return out
    import onnx

    from detector.backends.onnx_backend import OnnxBackend
    from detector.data.boxes import read_box_dataset
    from detector.evaluation.calibrate import calibrate
    from export.onnx_export import set_metadata

    backend = OnnxBackend(onnx_path)
    cal = calibrate(backend, read_box_dataset(scenes), 0.9, "val")
    assert cal.box_calibration, "the session scenes should hold enough boxes to fit a box calibration"
    proto = onnx.load(str(onnx_path))
    meta = cal.applied(backend.meta)
    set_metadata(proto, meta, backend.head_kernel, backend.head_bias, backend.props["source_model_sha256"], "fp32")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    onnx.save(proto, str(partial))
    shutil.move(partial, out)
    return out


def png_scenes(scenes: Path, out: Path, with_logos: int = 4, without: int = 2) -> list[Path]:
    """Some scenes with logos and some without, decoded from their JPEGs and saved as PNG."""
    counts: dict[str, int] = {}
    with open(scenes / "boxes.csv", newline="") as f:
        for row in csv.DictReader(f):
            counts[row["file"]] = counts.get(row["file"], 0) + 1
    names = sorted(p.name for p in (scenes / "images").glob("*.jpg"))
    chosen = [n for n in names if counts.get(n, 0) >= 1][:with_logos] + [n for n in names if n not in counts][:without]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in chosen:
        png = out / (Path(name).stem + ".png")
        assert cv2.imwrite(str(png), cv2.imread(str(scenes / "images" / name)))
        paths.append(png)
    return paths


@dataclass
class Parity:
    """How one JavaScript scan compares with Python's: boxes matched, the worst IoU and score gap."""

    boxes: int
    min_iou: float
    max_dscore: float


def _as_detection(b: dict) -> Detection:
    return Detection(b["label"], float(b["score"]), b["x1"], b["y1"], b["x2"], b["y2"], b["scale"])


def compare(py: ScanResult, js: dict, where: str) -> Parity:
    """Same verdicts and scores; every Python box matched by a JS box (IoU >= 0.9, score within 1e-3),
    and no JS box without a Python one. `js` is a scan@2 record, with full-precision `raw_boxes` if any."""
    assert js["labels"] == py.labels, f"{where}: verdict {js['labels']} != Python's {py.labels}"
    for label, score in py.scores.items():
        assert abs(js["scores"][label] - score) <= SCORE_TOLERANCE, f"{where}: {label} image score"
    theirs = [_as_detection(b) for b in js.get("raw_boxes", js["boxes"])]
    assert len(theirs) == len(py.boxes), f"{where}: {len(theirs)} JS boxes, Python has {len(py.boxes)}"
    min_iou, max_ds = 1.0, 0.0
    free = list(theirs)
    for b in py.boxes:
        best = max((t for t in free if t.label == b.label), key=lambda t: iou(b, t), default=None)
        assert best is not None and iou(b, best) >= IOU_MIN, f"{where}: Python box {b.as_dict()} has no JS match"
        assert abs(best.score - b.score) <= SCORE_TOLERANCE, f"{where}: box score {best.score} vs {b.score}"
        free.remove(best)
        min_iou, max_ds = min(min_iou, iou(b, best)), max(max_ds, abs(best.score - b.score))
    return Parity(len(py.boxes), min_iou, max_ds)


def summary(parities: list[Parity]) -> str:
    """One line for the test log: boxes compared, min IoU, max |dscore|."""
    boxes = sum(p.boxes for p in parities)
    min_iou = min((p.min_iou for p in parities if p.boxes), default=1.0)
    max_ds = max((p.max_dscore for p in parities), default=0.0)
    return f"{len(parities)} images, {boxes} boxes: min IoU {min_iou:.6f}, max |dscore| {max_ds:.2e}"
