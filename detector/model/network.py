"""The classifier network: Inception v3 (Keras applications, no top) cut at a chosen block, global
average pooling, dropout and one linear dense layer giving a logit per class, softmax on top.

The linear head over pooled features is what makes Grad-CAM exact and cheap (head kernel times feature
map), and the block it sits on decides how fine those maps are: `mixed10` is 8x8 at 299 px but only 2x2
at 128 px. Pixels go in as RGB floats in 0..255; Inception's scaling to -1..1 is a layer of the model,
so every runtime (Keras, ONNX, a browser) feeds plain pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from detector.data.folders import file_sha256
from detector.errors import ModelDirError, WeightsError
from detector.model.meta import BLOCKS, MIN_INPUT_SIZE, ModelMeta

if TYPE_CHECKING:  # keras is heavy: import it only where a model is really built
    import keras


def check_build_args(input_size: int, cam_layer: str) -> None:
    if input_size < MIN_INPUT_SIZE:
        raise ModelDirError(f"input_size must be at least {MIN_INPUT_SIZE} (Inception v3's minimum)")
    if cam_layer not in BLOCKS:
        raise ModelDirError(f"cam_layer must be one of {', '.join(BLOCKS)}; got '{cam_layer}'")


def resolve_weights(weights: str) -> str | None:
    """'imagenet' | 'none' | a path -> the argument Keras applications take."""
    if weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        return "imagenet"
    p = Path(weights).expanduser()
    if not p.is_file():
        raise WeightsError(f"weights {weights}: no such file (use 'imagenet', 'none' or a weights file path)")
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
        raise WeightsError(f"weights {weights}: not Inception v3 weights Keras can load ({text})") from None
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
