"""The Keras (TensorFlow) backend: probabilities and CAMs from one compiled forward pass.

The CAM output is the closed form of Grad-CAM for the linear head over global average pooling: the
class logit is the spatial mean of (feature map @ head kernel + bias), so that per-location map is the
class-activation map, and its gradient-weighted sum (Grad-CAM) is the same map up to a positive
factor. `detector.pipeline.cam.gradcam_tape` computes the general gradient version for tests and other layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.backends.base import BackendOutput
from detector.backends.checks import check_meta, probe_outputs
from detector.errors import ModelDirError
from detector.model.meta import META_FILE, ModelMeta
from detector.model.store import load_model_dir, model_sha256, read_meta


def cam_forward(model):
    """pixels (N, H, W, 3) -> (probs, cams, features), any H and W: the graph Keras runs and ONNX exports.

    The head is applied as a 1x1 convolution at every location (the per-location class logits, i.e.
    the CAM), and the image logits are their spatial mean: for a linear head over global average
    pooling this is exactly the classifier's own output (dropout is off at inference).
    """
    import keras
    import tensorflow as tf

    pixels = keras.Input(shape=(None, None, 3), name="pixels")
    features_model = keras.Model(pixels, model.get_layer("backbone")(model.get_layer("preprocess")(pixels)))
    dense = model.get_layer("logits")
    kernel = np.asarray(dense.kernel.numpy(), np.float32)[None, None]  # (1, 1, channels, classes)
    bias = np.asarray(dense.bias.numpy(), np.float32)

    def forward(t: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        # constants made inside the traced function are graph constants, not captured inputs (tf2onnx)
        f = features_model(t, training=False)
        cams = tf.nn.bias_add(tf.nn.conv2d(f, tf.constant(kernel), strides=1, padding="VALID"), tf.constant(bias))
        logits = tf.reduce_mean(cams, axis=(1, 2))
        return tf.nn.softmax(logits), cams, f

    return forward


class KerasBackend:
    def __init__(self, model, meta: ModelMeta, model_name: str = "", sha256: str = "") -> None:
        import tensorflow as tf

        self.meta = meta
        self.model = model
        self.name = "keras"
        self.model_name = model_name
        self.model_sha256 = sha256
        dense = model.get_layer("logits")
        self.head_kernel = np.asarray(dense.kernel.numpy(), np.float32)  # (channels, classes)
        self.head_bias = np.asarray(dense.bias.numpy(), np.float32)
        self._forward = tf.function(cam_forward(model), reduce_retracing=True)

    @classmethod
    def load(cls, model_dir: str | Path, shared_cpu: bool = False) -> KerasBackend:
        """Open a model directory, checked whole before it is used (detector.backends.checks): a
        damaged or foreign directory is a one-line ModelDirError here, never at the first scan.
        (`shared_cpu` is for onnxruntime's thread spinning; TF has no such setting to change.)"""
        from detector.tfquiet import import_tensorflow_quietly

        check_meta(read_meta(model_dir), str(Path(model_dir) / META_FILE))  # before TF's 6-8 s import
        import_tensorflow_quietly()
        model, meta = load_model_dir(model_dir)
        try:
            backend = cls(model, meta, Path(model_dir).name, model_sha256(model_dir))
        except (ValueError, AttributeError, TypeError, KeyError) as e:  # no such layer, a layer of another kind
            text = (str(e).splitlines() or [e.__class__.__name__])[0][:160]
            raise ModelDirError(
                f"{model_dir}: not a logo-detector classifier (needs layers preprocess, backbone and a "
                f"dense 'logits'; {text})"
            ) from None
        probe_outputs(backend, str(model_dir))
        return backend

    def predict(self, tiles: np.ndarray, with_features: bool = False) -> BackendOutput:
        import tensorflow as tf

        probs, cams, features = self._forward(tf.convert_to_tensor(np.asarray(tiles, np.float32)))
        return BackendOutput(probs.numpy(), cams.numpy(), features.numpy() if with_features else None)
