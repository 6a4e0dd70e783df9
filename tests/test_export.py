"""ONNX export with the really trained test model: parity, metadata, quantization, the onnxruntime backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.api import Detector
from detector.backends import open_backend
from detector.backends.onnx_backend import OnnxBackend, pick_providers
from detector.data.boxes import read_box_dataset
from detector.errors import ModelDirError
from detector.geometry import box_iou
from detector.model.store import read_meta
from export.onnx_export import FP32_CAM_CORRELATION, FP32_PROB_TOLERANCE, export_model
from tests.helpers import ROOT, run_cli


def _tiles(scene_data: Path, n: int = 48) -> np.ndarray:
    """n tiles, half from each class folder: outputs that must differ between tiles."""
    folders = sorted(p for p in (scene_data / "tiles").iterdir() if p.is_dir())
    files = [f for d in folders for f in sorted(d.glob("*.jpg"))[::7][: n // len(folders)]]
    return np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in files])


def test_fp32_export_matches_keras(exported_onnx, trained_model: Path, scene_data: Path) -> None:
    fp32 = exported_onnx.checks[0]
    assert fp32.precision == "fp32" and fp32.tiles >= 64
    assert fp32.max_abs_prob <= FP32_PROB_TOLERANCE
    assert fp32.cam_correlation >= FP32_CAM_CORRELATION
    assert fp32.verdict_agreement == 1.0
    # Independently of the exporter's own check: the two backends on other tiles, and a trained model
    # (outputs that differ between tiles), so agreement means something.
    tiles = _tiles(scene_data)
    k, o = open_backend(trained_model).predict(tiles), OnnxBackend(exported_onnx.path).predict(tiles)
    assert k.probs[:, 1].std() > 0.1
    np.testing.assert_allclose(o.probs, k.probs, atol=1e-4)
    assert np.corrcoef(o.cams.ravel(), k.cams.ravel())[0, 1] >= 0.999
    assert o.cams.shape == k.cams.shape == (len(tiles), 7, 7, 2)


def test_dynamic_height_and_width(exported_onnx, trained_model: Path, scene_data: Path) -> None:
    """Whole images go through the same file (the dense mode feeds them)."""
    img = cv2.cvtColor(cv2.imread(str(next((scene_data / "scenes" / "images").glob("*.jpg")))), cv2.COLOR_BGR2RGB)
    batch = img[None].astype(np.float32)
    k, o = open_backend(trained_model).predict(batch), OnnxBackend(exported_onnx.path).predict(batch)
    assert o.cams.shape == k.cams.shape and o.cams.shape[1] > 20  # 240x320 -> 27x37 cells at mixed2
    assert np.abs(o.cams - k.cams).max() < 1e-3 * max(1.0, np.abs(k.cams).max())


def test_metadata_round_trip(exported_onnx, trained_model: Path) -> None:
    import onnx

    meta = read_meta(trained_model)
    backend = OnnxBackend(exported_onnx.path)
    assert backend.meta == meta
    keras = open_backend(trained_model)
    np.testing.assert_array_equal(backend.head_kernel, keras.head_kernel)
    np.testing.assert_array_equal(backend.head_bias, keras.head_bias)
    props = {p.key: p.value for p in onnx.load(str(exported_onnx.path)).metadata_props}
    assert json.loads(props["classes"]) == meta.classes
    assert props["negative_class"] == meta.negative_class and props["input_size"] == str(meta.input_size)
    assert props["source_model_sha256"] == keras.model_sha256 and props["precision"] == "fp32"
    assert (props["cam_stride"], props["cam_offset"]) == ("8", "13")
    assert [i.name for i in backend.session.get_inputs()] == ["pixels"]
    assert [o.name for o in backend.session.get_outputs()] == ["probs", "cam", "features"]


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_quantized_exports_agree_with_keras(
    precision: str, exported_onnx, trained_model: Path, scene_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"m-{precision}.onnx"
    report = export_model(trained_model, out, quantize=precision, data=scene_data / "tiles", log=lambda s: None)
    fp32, q = report.checks
    assert q.precision == precision and q.tiles >= 64
    print(f"{precision}: verdict agreement {q.verdict_agreement:.3f}, max |dprob| {q.max_abs_prob:.2e}")
    assert q.verdict_agreement >= 0.95
    assert q.max_abs_prob <= (0.01 if precision == "fp16" else 0.15)
    assert q.cam_correlation >= 0.98
    backend = OnnxBackend(out)
    assert backend.props["precision"] == precision
    assert out.stat().st_size < 0.6 * exported_onnx.size_bytes


def test_auto_precision_is_timed_on_this_machine(trained_model: Path, scene_data: Path, tmp_path: Path) -> None:
    from export.onnx_export import AUTO_MIN_AGREEMENT

    out = tmp_path / "m-auto.onnx"
    report = export_model(trained_model, out, quantize="auto", data=scene_data / "tiles", log=lambda s: None)
    fp32, int8 = report.checks
    choice = report.choice
    print(f"auto: {choice}")
    assert choice["fp32_ms_per_tile"] > 0 and choice["int8_ms_per_tile"] > 0
    faster = choice["int8_ms_per_tile"] < choice["fp32_ms_per_tile"]
    expected = "int8" if faster and int8.verdict_agreement >= AUTO_MIN_AGREEMENT else "fp32"
    assert report.precision == choice["precision"] == expected
    assert OnnxBackend(out).props["precision"] == expected  # the file written is the one picked


def test_onnx_backend_gives_the_keras_boxes(exported_onnx, trained_model: Path, scene_data: Path) -> None:
    keras_det, onnx_det = Detector.load(trained_model), Detector.load(exported_onnx.path)
    assert onnx_det.backend.name.startswith("onnx (CPUExecutionProvider")
    ds = read_box_dataset(scene_data / "scenes")
    records = [r for r in ds.images if r.boxes][:8] + [r for r in ds.images if not r.boxes][:2]
    n_boxes = 0
    for rec in records:
        a, b = keras_det.scan(ds.image_path(rec)), onnx_det.scan(ds.image_path(rec))
        assert a.has_logo == b.has_logo and a.labels == b.labels
        assert len(a.boxes) == len(b.boxes)
        for ba in a.boxes:
            best = max(box_iou((ba.x1, ba.y1, ba.x2, ba.y2), (bb.x1, bb.y1, bb.x2, bb.y2)) for bb in b.boxes)
            assert best >= 0.9
        n_boxes += len(a.boxes)
    assert n_boxes >= 4  # the comparison covered real boxes


def test_onnx_scan_does_not_import_tensorflow(exported_onnx, scene_data: Path) -> None:
    img = next((scene_data / "scenes" / "images").glob("*.jpg"))
    code = (
        "import sys, json\n"
        "from cli import app\n"
        f"sys.argv = ['detect', 'scan', {str(img)!r}, '--model', {str(exported_onnx.path)!r}, '--format', 'json']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('TF_LOADED', 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "TF_LOADED False False" in proc.stdout
    result = json.loads(proc.stdout[: proc.stdout.rindex("TF_LOADED")])
    assert result["model"]["backend"].startswith("onnx") and result["width"] == 320


def test_providers_fall_back_to_the_cpu() -> None:
    assert pick_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert pick_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    assert pick_providers([]) == ["CPUExecutionProvider"]


def test_bad_onnx_files_are_clear_errors(tmp_path: Path, trained_model: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    with pytest.raises(ModelDirError, match="cannot load"):
        OnnxBackend(junk)
    with pytest.raises(ModelDirError, match="no such ONNX file"):
        OnnxBackend(tmp_path / "missing.onnx")
    proc = run_cli("export", str(trained_model), "--out", str(tmp_path / "x.txt"))
    assert proc.returncode == 2 and "must end in .onnx" in proc.stderr
    proc = run_cli("scan", str(junk), "--model", str(junk))
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_foreign_onnx_file_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelDirError, match="not a logo-detector ONNX export"):
        OnnxBackend(path)
