"""The contract of an exported `.onnx` file: tensor names and `metadata_props` keys.

Other runtimes (Node, C++, a browser) read the same keys, so they are flat strings a person can read
with any ONNX viewer; JSON where a value is a list or a map. The README's ONNX reference mirrors this.
The head kernel travels along (base64 float32) so the runtime can compute Grad-CAM++ from `features`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import Any

import numpy as np

from detector.model.meta import CAM_GEOMETRY, ModelMeta

FORMAT = "logo-detector/onnx@1"
INPUT = "pixels"  # float32 [N, H, W, 3], RGB 0..255, any N, H, W (>= 75)
PROBS = "probs"  # float32 [N, classes] softmax of the mean of `cam` over space
CAM = "cam"  # float32 [N, h, w, classes] per-location class logits (features @ head kernel + bias)
FEATURES = "features"  # float32 [N, h, w, channels] the CAM layer's feature map
OUTPUTS = (PROBS, CAM, FEATURES)


def metadata_props(meta: ModelMeta, kernel: np.ndarray, bias: np.ndarray, source_sha256: str, precision: str):
    """The key -> string map written into the ONNX file."""
    stride, offset = CAM_GEOMETRY[meta.cam_layer]
    k = np.ascontiguousarray(kernel, dtype="<f4")
    return {
        "format": FORMAT,
        "classes": json.dumps(meta.classes),
        "negative_class": meta.negative_class,
        "input_size": str(meta.input_size),
        "thresholds": json.dumps(meta.thresholds),
        "image_thresholds": json.dumps(meta.image_thresholds),
        "cam_threshold": json.dumps(meta.cam_threshold),
        "box_calibration": json.dumps(meta.box_calibration),
        "cam_layer": meta.cam_layer,
        "cam_stride": str(stride),
        "cam_offset": str(offset),
        "preprocessing": "rgb float32 0..255 NHWC in; x/127.5-1 inside the graph",
        "precision": precision,
        "source_model_sha256": source_sha256,
        "version": meta.version,
        "head_kernel": json.dumps({"shape": list(k.shape), "float32_le_base64": base64.b64encode(k).decode()}),
        "head_bias": json.dumps([float(b) for b in bias]),
        "model_json": json.dumps(asdict(meta)),
    }


def read_metadata(props: dict[str, str]) -> tuple[ModelMeta, np.ndarray, np.ndarray, dict[str, Any]]:
    """metadata_props -> (ModelMeta, head kernel, head bias, the raw props). Raises KeyError/ValueError."""
    if props.get("format") != FORMAT:
        raise ValueError(f"not a logo-detector ONNX file (format {props.get('format')!r})")
    data = json.loads(props["model_json"])
    known = set(ModelMeta.__dataclass_fields__)
    meta = ModelMeta(**{k: v for k, v in data.items() if k in known})
    head = json.loads(props["head_kernel"])
    kernel = np.frombuffer(base64.b64decode(head["float32_le_base64"]), "<f4").reshape(head["shape"])
    bias = np.asarray(json.loads(props["head_bias"]), np.float32)
    return meta, kernel.astype(np.float32), bias, props
