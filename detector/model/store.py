"""Build, save and load the classifier and its model directory.

The classifier is Inception v3 (Keras applications, no top) cut at a chosen block, global average
pooling, dropout and one linear dense layer giving a logit per class, softmax on top. The linear head
over pooled features is what makes Grad-CAM exact and cheap (head kernel times feature map), and the
block it sits on decides how fine those maps are: `mixed10` is 8x8 at 299 px but only 2x2 at 128 px.

Pixels go in as RGB floats in 0..255; Inception's scaling to -1..1 is a layer of the model, so every
runtime (Keras, ONNX, a browser) feeds plain pixels.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector import __version__
from detector.data.folders import file_sha256
from detector.errors import ModelDirError, WeightsError

if TYPE_CHECKING:  # keras is heavy: import it only where a model is really built
    import keras

BACKBONE = "inception_v3"
MODEL_FILE = "model.keras"
META_FILE = "model.json"
FORMAT = "logo-detector/model@1"
BLOCKS = tuple(f"mixed{i}" for i in range(11))  # Inception v3's blocks, input side first
#: Where CAM cells sit in the input: cell i is centred on pixel offset + stride * i (Inception v3's
#: 'valid' convolutions and poolings). A map must be placed there, not stretched over the whole tile:
#: at 80 px the 7 cells of mixed2 are centred on pixels 13..61, not 6..74.
CAM_GEOMETRY = {
    **{f"mixed{i}": (8, 13) for i in range(3)},
    **{f"mixed{i}": (16, 21) for i in range(3, 8)},
    **{f"mixed{i}": (32, 37) for i in range(8, 11)},
}
PREPROCESSING = "rgb float 0..255 in; x/127.5-1 inside the model (layer 'preprocess')"
MIN_INPUT_SIZE = 75


@dataclass
class ModelMeta:
    """What `model.json` records: everything a runtime needs besides the weights."""

    classes: list[str]
    negative_class: str
    input_size: int
    cam_layer: str
    weights_origin: str
    dropout: float
    bn_momentum: float
    thresholds: dict[str, float] = field(default_factory=dict)  # per tile (the classifier's own input)
    image_thresholds: dict[str, float] = field(default_factory=dict)  # on an image's best tile (`detect calibrate`)
    cam_threshold: float | None = None  # fraction of a tile map's peak that makes a box pixel
    join_cells: float | None = None  # CAM fragments this many map cells apart are one logo
    box_calibration: dict[str, Any] | None = None  # box correction and scorer (detector.pipeline.calibration)
    validation: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    backbone: str = BACKBONE
    preprocessing: str = PREPROCESSING
    format: str = FORMAT
    version: str = __version__

    @property
    def positive_classes(self) -> list[str]:
        return [c for c in self.classes if c != self.negative_class]

    def threshold(self, label: str) -> float:
        return float(self.thresholds.get(label, 0.5))


def check_build_args(input_size: int, cam_layer: str) -> None:
    if input_size < MIN_INPUT_SIZE:
        raise ModelDirError(f"--input-size must be at least {MIN_INPUT_SIZE} (Inception v3's minimum)")
    if cam_layer not in BLOCKS:
        raise ModelDirError(f"--cam-layer must be one of {', '.join(BLOCKS)}; got '{cam_layer}'")


def resolve_weights(weights: str) -> str | None:
    """'imagenet' | 'none' | a path -> the argument Keras applications take."""
    if weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        return "imagenet"
    p = Path(weights).expanduser()
    if not p.is_file():
        raise WeightsError(f"--weights {weights}: no such file (use 'imagenet', 'none' or a weights file path)")
    return str(p)


def weights_origin(weights: str) -> str:
    resolved = resolve_weights(weights)
    if resolved is None:
        return "none"
    if resolved == "imagenet":
        return "imagenet"
    return f"file:{Path(resolved).name}:sha256={file_sha256(Path(resolved))[:16]}"


def build_backbone(weights: str, cam_layer: str, bn_momentum: float) -> keras.Model:
    """Inception v3 from its input to `cam_layer`, any input size, named 'backbone'."""
    import keras

    resolved = resolve_weights(weights)
    try:
        base = keras.applications.InceptionV3(include_top=False, weights=resolved, input_shape=(None, None, 3))
    except Exception as e:  # Keras raises plain Exception/ValueError/OSError for downloads and files
        text = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        if resolved == "imagenet":
            raise WeightsError(
                "could not download the ImageNet weights for Inception v3 "
                f"({text}). Pass --weights PATH with a local weights file "
                "(inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5), or --weights none"
            ) from None
        raise WeightsError(f"--weights {weights}: not Inception v3 weights Keras can load ({text})") from None
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
    return keras.Model(base.input, base.get_layer(cam_layer).output, name="backbone")


def build_classifier(meta: ModelMeta, backbone: keras.Model) -> keras.Model:
    """pixels -> preprocess -> backbone -> pool -> dropout -> logits -> probs (softmax)."""
    import keras

    s = meta.input_size
    pixels = keras.Input(shape=(s, s, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(pixels)
    fmap = backbone(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(fmap)
    dropped = keras.layers.Dropout(meta.dropout, name="dropout")(pooled)
    logits = keras.layers.Dense(len(meta.classes), name="logits")(dropped)
    probs = keras.layers.Softmax(name="probs")(logits)
    return keras.Model(pixels, probs, name="logo_classifier")


def new_model(
    classes: list[str],
    negative_class: str,
    weights: str = "imagenet",
    input_size: int = 299,
    cam_layer: str = "mixed10",
    dropout: float = 0.5,
    bn_momentum: float | None = None,
) -> tuple[keras.Model, ModelMeta]:
    """A fresh classifier. BatchNorm momentum defaults to 0.9 without pretrained weights: Keras's 0.99
    lags so far behind a short from-scratch run that every tile came out negative (STACK-NOTES)."""
    check_build_args(input_size, cam_layer)
    origin = weights_origin(weights)
    if bn_momentum is None:
        bn_momentum = 0.9 if origin == "none" else 0.99
    meta = ModelMeta(
        classes=list(classes),
        negative_class=negative_class,
        input_size=input_size,
        cam_layer=cam_layer,
        weights_origin=origin,
        dropout=dropout,
        bn_momentum=bn_momentum,
    )
    backbone = build_backbone(weights, cam_layer, bn_momentum)
    return build_classifier(meta, backbone), meta


def feature_extractor(classifier: keras.Model) -> keras.Model:
    """pixels -> pooled backbone features: what the bottleneck cache stores."""
    import keras

    return keras.Model(classifier.input, classifier.get_layer("pool").output, name="features")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def save_model_dir(model: keras.Model, meta: ModelMeta, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (MODEL_FILE + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, out / MODEL_FILE)
    write_json_atomic(out / META_FILE, asdict(meta))
    return out


def read_meta(model_dir: str | Path) -> ModelMeta:
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelDirError(f"{d}: no such model directory (train one with `detect train`)")
    meta_path = d / META_FILE
    if not meta_path.is_file() or not (d / MODEL_FILE).is_file():
        raise ModelDirError(f"{d}: not a logo-detector model directory (needs {MODEL_FILE} and {META_FILE})")
    try:
        data = json.loads(meta_path.read_text())
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON or not UTF-8
        raise ModelDirError(f"{meta_path}: damaged ({str(e)[:200]})") from None
    if not isinstance(data, dict):
        raise ModelDirError(f"{meta_path}: not a logo-detector model (a JSON {type(data).__name__}, not an object)")
    if data.get("format") != FORMAT:
        raise ModelDirError(f"{meta_path}: not a logo-detector model (format {data.get('format')!r})")
    known = set(ModelMeta.__dataclass_fields__)
    try:
        return ModelMeta(**{k: v for k, v in data.items() if k in known})
    except TypeError as e:
        raise ModelDirError(f"{meta_path}: missing fields ({e})") from None


def update_meta(model_dir: str | Path, **changes: Any) -> ModelMeta:
    meta = read_meta(model_dir)
    for k, v in changes.items():
        setattr(meta, k, v)
    write_json_atomic(Path(model_dir) / META_FILE, asdict(meta))
    return meta


def load_model_dir(model_dir: str | Path) -> tuple[keras.Model, ModelMeta]:
    """Load with Keras safe_mode: a model directory never runs code it carries."""
    import keras

    meta = read_meta(model_dir)
    path = Path(model_dir) / MODEL_FILE
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:
        text = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise ModelDirError(f"{path}: cannot load ({text[:200]})") from None
    if model.output_shape[-1] != len(meta.classes):
        raise ModelDirError(
            f"{model_dir}: model has {model.output_shape[-1]} outputs but {META_FILE} lists {len(meta.classes)} classes"
        )
    return model, meta


def model_sha256(model_dir: str | Path) -> str:
    return file_sha256(Path(model_dir) / MODEL_FILE)
