"""Load-time checks of a model, whatever runtime holds it: a damaged or foreign model fails when it is
opened, with one line that says what is wrong, never at the first prediction.

Two parts: the metadata (model.json, or the ONNX file's copy of it) must describe a model this
pipeline can drive (types and ranges of every field it reads), and one probe call on a blank tile must
give outputs of the shapes the metadata promises (class count, CAM map, features that match the head).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from detector.errors import ModelDirError
from detector.model.meta import CAM_GEOMETRY, MIN_INPUT_SIZE, ModelMeta

MAX_INPUT_SIZE = 4096


def _number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _problems(meta: ModelMeta) -> list[str]:
    p: list[str] = []
    classes = meta.classes
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
        return ["classes must be a list of at least two class names"]
    if len(set(classes)) != len(classes):
        p.append("classes has duplicate names")
    if meta.negative_class not in classes:
        p.append(f"negative_class {meta.negative_class!r} is not one of the classes")
    size = meta.input_size
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE:
        p.append(f"input_size must be a whole number in [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}], got {size!r}")
    if meta.cam_layer not in CAM_GEOMETRY:
        p.append(f"cam_layer must be one of mixed0..mixed10, got {meta.cam_layer!r}")
    for name in ("thresholds", "image_thresholds"):
        t = getattr(meta, name)
        if not isinstance(t, dict) or not all(k in classes and _number(v) and 0 <= v <= 1 for k, v in t.items()):
            p.append(f"{name} must map class names to numbers in [0, 1]")
    if meta.cam_threshold is not None and not (_number(meta.cam_threshold) and 0 <= meta.cam_threshold <= 1):
        p.append("cam_threshold must be a number in [0, 1] or null")
    if meta.join_cells is not None and not (_number(meta.join_cells) and 0 <= meta.join_cells <= 64):
        p.append("join_cells must be a number in [0, 64] or null")
    if meta.box_calibration is not None:
        p += _calibration_problems(meta)
    return p


def _calibration_problems(meta: ModelMeta) -> list[str]:
    from detector.geometry import Detection
    from detector.pipeline.calibration import BoxCalibration

    if not isinstance(meta.box_calibration, dict):
        return ["box_calibration must be an object or null"]
    try:
        cal = BoxCalibration.from_dict(meta.box_calibration)
        label = next(c for c in meta.classes if c != meta.negative_class)
        boxes = cal.apply([Detection(label, 0.9, 10.0, 10.0, 50.0, 50.0, 1.0)], int(meta.input_size), 100, 100)
        if not all(math.isfinite(v) for b in boxes for v in (b.score, b.x1, b.y1, b.x2, b.y2)):
            return ["box_calibration gives non-finite boxes"]
    except Exception as e:  # any malformed field: KeyError, TypeError, ValueError, shape mismatches
        return [f"box_calibration is damaged ({e.__class__.__name__}: {str(e)[:80]})"]
    return []


def check_meta(meta: ModelMeta, where: str) -> None:
    """Raise ModelDirError naming every field the pipeline could not use."""
    problems = _problems(meta)
    if problems:
        raise ModelDirError(f"{where}: not a usable logo-detector model: {'; '.join(problems)}")


def probe_outputs(backend: Any, where: str) -> None:
    """One call on a blank tile of the model's input size: the outputs must match the metadata."""
    meta = backend.meta
    n_cls = len(meta.classes)
    kernel, bias = np.asarray(backend.head_kernel), np.asarray(backend.head_bias)
    if kernel.ndim != 2 or kernel.shape[1] != n_cls or bias.shape != (n_cls,):
        raise ModelDirError(f"{where}: head of shape {kernel.shape} / bias {bias.shape} does not match {n_cls} classes")
    size = meta.input_size
    try:
        out = backend.predict(np.zeros((1, size, size, 3), np.uint8), with_features=True)
        probs, cams, feats = (np.asarray(x) for x in (out.probs, out.cams, out.features))
    except Exception as e:  # the runtime's own error types (onnxruntime, TensorFlow)
        text = (str(e).splitlines() or [e.__class__.__name__])[0][:200]
        raise ModelDirError(f"{where}: the model does not run on a {size}x{size} tile ({text})") from None
    want = [
        (probs.shape == (1, n_cls), f"probs {probs.shape}, want (1, {n_cls})"),
        (
            cams.ndim == 4 and cams.shape[0] == 1 and cams.shape[3] == n_cls,
            f"cam {cams.shape}, want (1, h, w, {n_cls})",
        ),
        (
            feats.ndim == 4
            and cams.ndim == 4
            and feats.shape[:3] == cams.shape[:3]
            and feats.shape[3] == kernel.shape[0],
            f"features {feats.shape}, want (1, h, w, {kernel.shape[0]})",
        ),
    ]
    bad = [msg for ok, msg in want if not ok]
    if bad:
        raise ModelDirError(f"{where}: outputs do not match its metadata: {'; '.join(bad)}")
    if not (np.isfinite(probs).all() and np.isfinite(cams).all()):
        raise ModelDirError(f"{where}: the model gives non-finite outputs on a blank tile (damaged weights?)")
