"""examples/node: the exported file used from Node.js gives the numbers Python gives.

The example is the proof that an `.onnx` export is self-describing (everything but the weights is in
its metadata_props), so it runs here for real: the session model's file, a logo tile and a background
tile cut from a synthetic scene, Node's output against `OnnxBackend` on the same PNG pixels; and whole
scenes scanned by scan_image.js (the in-browser scan library on onnxruntime-node) against Python's scan.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.backends.onnx_backend import OnnxBackend
from detector.evaluation.metrics import decide
from export.onnx_export import ExportReport
from tests.helpers import ROOT
from tests.web_parity import calibrated_copy, compare, png_scenes, summary

EXAMPLE = ROOT / "examples" / "node"
PROB_TOLERANCE = 1e-4  # the same runtime on the same float32 pixels: only thread-order rounding differs


def _require_tool(name: str) -> str:
    """The tool's path; a skip on a developer machine without Node, a failure in CI (where it must run)."""
    path = shutil.which(name)
    if path is None:
        reason = f"`{name}` is not on PATH: install Node.js >= 18 to run the examples/node test"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def node() -> str:
    """`node`, with examples/node's dependencies installed (`npm ci`, once) if they are missing.

    Session scope so that it is set up before the session's trained model: a skip costs no training.
    """
    node = _require_tool("node")
    if not (EXAMPLE / "node_modules" / "onnxruntime-node").is_dir():
        npm = _require_tool("npm")
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=EXAMPLE, capture_output=True, text=True, timeout=600
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`npm ci` in {EXAMPLE} took over 10 minutes (is the npm registry reachable?)")
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            pytest.fail(f"`npm ci` in {EXAMPLE} failed (exit {done.returncode}); run it by hand to see why:\n{tail}")
    return node


def _tile_windows(scenes: Path, size: int) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
    """(image, x, y) of a size x size window around a whole logo box, and of one that touches no box."""
    boxes: dict[str, list[tuple[int, int, int, int]]] = {}
    with open(scenes / "boxes.csv", newline="") as f:
        for row in csv.DictReader(f):
            boxes.setdefault(row["file"], []).append(tuple(int(row[k]) for k in ("x1", "y1", "x2", "y2")))
    images = sorted(p.name for p in (scenes / "images").glob("*.jpg"))
    h, w = cv2.imread(str(scenes / "images" / images[0])).shape[:2]

    def clear(name: str, x: int, y: int) -> bool:
        return all(x2 <= x or x1 >= x + size or y2 <= y or y1 >= y + size for x1, y1, x2, y2 in boxes.get(name, []))

    logo = next(
        (name, min(max((x1 + x2 - size) // 2, 0), w - size), min(max((y1 + y2 - size) // 2, 0), h - size))
        for name in images
        for x1, y1, x2, y2 in boxes.get(name, [])
        if size * 0.3 <= max(x2 - x1, y2 - y1) <= size * 0.8  # a logo the tile shows whole and large
    )
    empty = next(
        (name, x, y)
        for name in images
        for y in range(0, h - size + 1, 16)
        for x in range(0, w - size + 1, 16)
        if clear(name, x, y)
    )
    return logo, empty


def _scan(node: str, onnx: Path, image: Path) -> dict:
    done = subprocess.run(
        [node, str(EXAMPLE / "scan_tile.js"), str(onnx), str(image), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=EXAMPLE,
    )
    assert done.returncode == 0, f"scan_tile.js failed:\n{done.stderr}"
    return json.loads(done.stdout)


def test_node_scan_matches_python(node: str, exported_onnx: ExportReport, scene_data: Path, tmp_path: Path) -> None:
    backend = OnnxBackend(exported_onnx.path)
    meta = backend.meta
    size = meta.input_size
    scenes = scene_data / "scenes"
    results, py_probs = [], []
    for label, (name, x, y) in zip(("logo", "empty"), _tile_windows(scenes, size), strict=True):
        png = tmp_path / f"{label}.png"
        assert cv2.imwrite(str(png), cv2.imread(str(scenes / "images" / name))[y : y + size, x : x + size])
        pixels = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB).astype(np.float32)  # what pngjs decodes
        py = backend.predict(pixels[None])
        got = _scan(node, exported_onnx.path, png)

        assert got["classes"] == meta.classes
        assert got["metadata"]["input_size"] == size and not got["resized"]
        assert got["metadata"]["negative_class"] == meta.negative_class
        assert got["metadata"]["thresholds"] == pytest.approx(meta.thresholds)
        probs = np.asarray(got["probs"], np.float32)
        np.testing.assert_allclose(probs, py.probs[0], rtol=0, atol=PROB_TOLERANCE)

        # The verdict is decide()'s rule; it must agree with Python's unless a prob sits on a threshold.
        node_rule = decide(probs[None], meta.classes, meta.negative_class, meta.thresholds)[0]
        assert got["verdict"] == meta.classes[node_rule]
        best = meta.classes.index(got["best_positive"])
        if abs(py.probs[0, best] - meta.threshold(meta.classes[best])) > PROB_TOLERANCE:
            py_verdict = decide(py.probs, meta.classes, meta.negative_class, meta.thresholds)[0]
            assert got["verdict"] == meta.classes[py_verdict]

        # CAM peak: the same map, and a cell where Python's map peaks too (up to ties), at offset + stride * i.
        cam = py.cams[0, :, :, best]
        assert got["cam_shape"] == [1, *py.cams.shape[1:]]
        row, col = got["cam_peak"]["cell"]
        assert cam[row, col] >= cam.max() - 1e-3
        stride, offset = int(backend.props["cam_stride"]), int(backend.props["cam_offset"])
        assert (got["cam_peak"]["x"], got["cam_peak"]["y"]) == (offset + stride * col, offset + stride * row)
        results.append(got)
        py_probs.append(py.probs[0])

    # Two different tiles, two different answers: agreement on them means something.
    assert np.abs(py_probs[0] - py_probs[1]).max() > 0.05
    delta = max(float(np.abs(np.asarray(r["probs"]) - p).max()) for r, p in zip(results, py_probs, strict=True))
    print(f"node vs python: max |delta prob| = {delta:.2e}; probs {[r['probs'] for r in results]} (shown with -rP)")


# -- a whole image: the scan library (detector/web/static/logo-scan.mjs) on onnxruntime-node ----------


@pytest.fixture(scope="session")
def calibrated_onnx(exported_onnx: ExportReport, scene_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session model with `detect calibrate`'s choices in its metadata (shared with tests/test_web.py)."""
    out = tmp_path_factory.getbasetemp() / "calibrated-onnx" / "model.onnx"
    return calibrated_copy(exported_onnx.path, scene_data / "scenes", out)


def test_node_scans_whole_images_like_python(
    node: str, calibrated_onnx: Path, scene_data: Path, tmp_path: Path
) -> None:
    """scan_image.js gives Python's verdicts and boxes on the same PNG scenes (IoU >= 0.9, scores 1e-3)."""
    from detector import Detector

    detector = Detector.load(calibrated_onnx)
    assert detector.meta.box_calibration and detector.meta.cam_threshold, "the model must carry a calibration"
    parities = []
    for png in png_scenes(scene_data / "scenes", tmp_path):
        done = subprocess.run(
            [node, str(EXAMPLE / "scan_image.js"), str(calibrated_onnx), str(png), "--json"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=EXAMPLE,
        )
        assert done.returncode == 0, f"scan_image.js failed:\n{done.stderr}"
        js = json.loads(done.stdout)
        assert js["schema"] == "logo-detector/scan@2" and (js["width"], js["height"]) == (320, 240)
        parities.append(compare(detector.scan(str(png)), js, png.name))
    assert sum(p.boxes for p in parities) >= 3, "the scenes should give Python some boxes to compare"
    print(f"node whole-image scan vs python: {summary(parities)} (shown with -rP)")


def test_node_scan_image_bad_input_is_one_line(node: str, exported_onnx: ExportReport, tmp_path: Path) -> None:
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    for args in ([str(exported_onnx.path), str(not_image)], [str(not_image), str(not_image)], []):
        script = str(EXAMPLE / "scan_image.js")
        done = subprocess.run([node, script, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode in (1, 2) and len(done.stderr.strip().splitlines()) == 1, done.stderr
