"""Grad-CAM by gradients (tf.GradientTape) for any layer: the general path, which the tests use to
check the closed forms against."""

from __future__ import annotations

import numpy as np


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
