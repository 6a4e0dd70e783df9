"""Damaged and foreign model files: every one is a one-line error when the model is opened.

Before (commit 9ca9ee9): a model.json that is valid JSON but not an object gave a traceback; a valid
Keras model of another shape gave "error: --scales takes numbers separated by commas" (an `except
ValueError` in cli.py's scan caught it); an ONNX file with our metadata but another graph loaded and
failed with a traceback at the first prediction; damaged calibration values failed mid-scan.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from detector.backends import open_backend
from detector.errors import ModelDirError
from tests.helpers import run_cli


def _copy(model: Path, dest: Path) -> Path:
    shutil.copytree(model, dest)
    return dest


def _edit_meta(model: Path, **changes) -> None:
    meta = json.loads((model / "model.json").read_text())
    meta.update(changes)
    (model / "model.json").write_text(json.dumps(meta))


@pytest.fixture
def image(tmp_path: Path) -> Path:
    from PIL import Image

    p = tmp_path / "x.png"
    Image.fromarray(np.full((60, 80, 3), 128, np.uint8)).save(p)
    return p


def _one_line_error(r, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(
    "content,needle",
    [
        ("[1, 2, 3]", "not an object"),
        ('"a string"', "not an object"),
        ("null", "not an object"),
        (b"\xff\xfe{not utf-8", "damaged"),
        ("[" * 100_000, "damaged"),
    ],
)
def test_model_json_that_is_not_an_object(trained_model: Path, tmp_path: Path, content, needle: str) -> None:
    m = _copy(trained_model, tmp_path / "m")
    (m / "model.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ModelDirError, match=needle) as e:
        open_backend(m)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "changes,needle",
    [
        ({"classes": "demo-logo"}, "classes must be a list"),
        ({"classes": ["no-logo"]}, "classes must be a list"),
        ({"negative_class": "background"}, "negative_class"),
        ({"input_size": "big"}, "input_size"),
        ({"input_size": 10}, "input_size"),
        ({"cam_layer": "mixed99"}, "cam_layer"),
        ({"thresholds": [0.5]}, "thresholds"),
        ({"thresholds": {"demo-logo": "high"}}, "thresholds"),
        ({"cam_threshold": "nan"}, "cam_threshold"),
        ({"box_calibration": {"correction": {"log_w": "x"}}}, "box_calibration"),
        ({"box_calibration": [1, 2]}, "box_calibration"),
    ],
)
def test_damaged_fields_fail_at_load_time(trained_model: Path, tmp_path: Path, changes: dict, needle: str) -> None:
    m = _copy(trained_model, tmp_path / "m")
    _edit_meta(m, **changes)
    with pytest.raises(ModelDirError, match=needle) as e:
        open_backend(m)
    assert "\n" not in str(e.value)


def test_a_keras_model_of_another_shape_is_named_as_such(trained_model: Path, tmp_path: Path, image: Path) -> None:
    import keras

    m = tmp_path / "foreign"
    m.mkdir()
    shutil.copy(trained_model / "model.json", m / "model.json")
    inp = keras.Input((80, 80, 3))
    keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp))).save(m / "model.keras")
    with pytest.raises(ModelDirError, match="not a logo-detector classifier"):
        open_backend(m)
    r = run_cli("scan", str(image), "--model", str(m), timeout=300)
    _one_line_error(r, "not a logo-detector classifier")
    assert "--scales" not in r.stderr


def _foreign_onnx(
    exported: Path, out: Path, outputs: tuple[str, ...] = ("probs", "cam", "features"), classes: int = 3
) -> Path:
    """A graph that is not ours (pixels -> their channel means, and themselves) with our export's metadata.
    `classes`: how many channels `probs` keeps (2 matches the metadata's class count; `cam` never does)."""
    import onnx
    from onnx import TensorProto, helper

    real = onnx.load(str(exported))
    inits = [
        helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in (("start", 0), ("stop", classes), ("axis", 3))
    ]
    nodes = [
        helper.make_node("Slice", ["pixels", "start", "stop", "axis"], ["kept"]),
        helper.make_node("ReduceMean", ["kept"], ["probs"], axes=[1, 2], keepdims=0),
        helper.make_node("Identity", ["pixels"], ["cam"]),
        helper.make_node("Identity", ["pixels"], ["features"]),
    ]
    graph = helper.make_graph(
        [n for n in nodes if n.output[0] in outputs or n.output[0] == "kept"],
        "foreign",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = real.ir_version
    for prop in real.metadata_props:
        model.metadata_props.append(prop)
    onnx.save(model, str(out))
    return out


def test_an_onnx_file_with_our_metadata_but_another_graph(exported_onnx, tmp_path: Path, image: Path) -> None:
    from detector.backends.onnx_backend import OnnxBackend

    three = _foreign_onnx(exported_onnx.path, tmp_path / "three.onnx")  # wrong class count, seen in the graph
    with pytest.raises(ModelDirError, match="probs has 3 classes, the metadata 2"):
        OnnxBackend(three)
    r = run_cli("scan", str(image), "--model", str(three), timeout=120)
    _one_line_error(r, "probs has 3 classes, the metadata 2")
    two = _foreign_onnx(exported_onnx.path, tmp_path / "two.onnx", classes=2)  # right probs, wrong maps: the probe
    with pytest.raises(ModelDirError, match=r"outputs do not match its metadata: cam \(1, 80, 80, 3\)"):
        OnnxBackend(two)
    missing = _foreign_onnx(exported_onnx.path, tmp_path / "nocam.onnx", outputs=("probs",))
    with pytest.raises(ModelDirError, match="no output cam, features"):
        OnnxBackend(missing)


def test_onnx_metadata_that_is_not_an_object(exported_onnx, tmp_path: Path) -> None:
    import onnx

    from detector.backends.onnx_backend import OnnxBackend

    model = onnx.load(str(exported_onnx.path))
    for prop in model.metadata_props:
        if prop.key == "model_json":
            prop.value = "[1, 2]"
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ModelDirError, match="not a logo-detector ONNX export"):
        OnnxBackend(bad)
