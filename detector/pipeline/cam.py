"""Class-activation maps for a tile: Grad-CAM and Grad-CAM++ in closed form, and by gradients.

The target is the log-odds of class c against the negative class, y = z_c - z_neg: "why logo c rather
than no logo". For the linear head over global average pooling its gradient with respect to the
feature map A is the constant (W_c - W_neg) / (h w), so
    Grad-CAM   = ReLU(A @ (W_c - W_neg)) / (h w)          (no gradients needed: works on ONNX outputs)
    Grad-CAM++ = ReLU(sum_k a_k ReLU(d_k) A_k),  a_k = 1 / (2 + d_k/(h w) * sum_ij A_kij)
`gradcam_tape` computes Grad-CAM with tf.GradientTape for any layer, the general path; tests show it
agrees with the closed form on the linear head.
"""

from __future__ import annotations

import numpy as np

CAM_METHODS = ("gradcam", "gradcam++")


def gradcam_from_cams(cams: np.ndarray, bias: np.ndarray, c: int, neg: int) -> np.ndarray:
    """Grad-CAM maps (N, h, w) of y = z_c - z_neg from the per-location logits a backend returns."""
    h, w = cams.shape[1:3]
    contrast = (cams[..., c] - bias[c]) - (cams[..., neg] - bias[neg])
    return np.maximum(contrast, 0.0) / (h * w)


def gradcam_pp(features: np.ndarray, kernel: np.ndarray, c: int, neg: int) -> np.ndarray:
    """Grad-CAM++ maps (N, h, w) from the CAM layer's feature maps (N, h, w, K) and the head kernel."""
    n, h, w, _ = features.shape
    d = kernel[:, c] - kernel[:, neg]  # (K,)
    g = d / (h * w)
    sums = features.sum(axis=(1, 2))  # (N, K)
    denom = 2.0 + sums * g[None, :]
    alpha = np.where(np.abs(denom) > 1e-12, 1.0 / denom, 0.0)
    weights = alpha * np.maximum(d, 0.0)[None, :]  # (N, K)
    return np.maximum(np.einsum("nhwk,nk->nhw", features, weights), 0.0)


def gradcam_tape(model, tiles: np.ndarray, layer: str, c: int, neg: int) -> np.ndarray:
    """Grad-CAM by gradients: d(z_c - z_neg)/dA averaged over space weights the channels of `layer`.

    `model` is the classifier; `layer` a layer of its backbone (the CAM layer or any earlier one).
    """
    import keras
    import tensorflow as tf

    backbone = model.get_layer("backbone")
    inner = keras.Model(backbone.input, [backbone.get_layer(layer).output, backbone.output])
    pixels = tf.convert_to_tensor(np.asarray(tiles, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(pixels)  # records the whole forward pass, so the layer's output is differentiable
        act, top = inner(model.get_layer("preprocess")(pixels), training=False)
        logits = model.get_layer("logits")(model.get_layer("pool")(top))
        target = logits[:, c] - logits[:, neg]
    grads = tape.gradient(target, act)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    return tf.nn.relu(tf.reduce_sum(weights * act, axis=-1)).numpy()
