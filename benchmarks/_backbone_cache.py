"""A Backend that runs one frozen backbone once per input and any number of linear heads over it.

Head-only models trained on the same pretrained backbone differ only in their head, and the scan
pipeline's model output is `cam = feature map @ kernel + bias`, `probs = softmax(mean(cam))`
(`detector.backends.keras_backend.cam_forward`). So a benchmark that compares many heads (16-brand vs
per-brand models, real vs synthetic training data, five folds) can compute each photo's feature maps
once and apply every head to them: the same numbers as the Keras backend (checked per head against
`KerasBackend` on real inputs by `check_against_keras`), at a fraction of the cost. The scan pipeline
itself is untouched: this is a Backend plug like the others.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from detector.backends.base import BackendOutput
from detector.model.meta import ModelMeta
from detector.model.store import load_model_dir, model_sha256


class FeatureMaps:
    """Backbone feature maps by input content (float16, in memory and in `folder` when given, so a
    rerun after a crash or with other variants starts warm); the backbone runs on a miss only."""

    def __init__(self, classifier, folder: Path | None = None) -> None:
        import keras

        self.folder = folder
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        pixels = keras.Input(shape=(None, None, 3), name="pixels")
        self.model = keras.Model(pixels, classifier.get_layer("backbone")(classifier.get_layer("preprocess")(pixels)))
        self.maps: dict[bytes, np.ndarray] = {}
        self.computed = 0
        self.hits = 0

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        key = hashlib.sha1(np.ascontiguousarray(tiles).tobytes()).digest() + repr(tiles.shape).encode()
        got = self.maps.get(key)
        path = self.folder / f"{key.hex()[:40]}.npy" if self.folder is not None else None
        if got is None and path is not None and path.is_file():
            got = self.maps[key] = np.load(path)
        if got is None:
            got = np.asarray(self.model(np.asarray(tiles, np.float32), training=False)).astype(np.float16)
            self.maps[key] = got
            self.computed += 1
            if path is not None:
                np.save(path, got)
        else:
            self.hits += 1
        return got

    @property
    def mib(self) -> float:
        return sum(m.nbytes for m in self.maps.values()) / 2**20


class CachedHeadBackend:
    """One trained model's head over shared FeatureMaps: the Backend protocol of detector.backends."""

    def __init__(self, model_dir: str | Path, maps: FeatureMaps) -> None:
        classifier, meta = load_model_dir(model_dir)
        dense = classifier.get_layer("logits")
        self.meta: ModelMeta = meta
        self.name = "keras (cached backbone)"
        self.model_name = Path(model_dir).name
        self.model_sha256 = model_sha256(model_dir)
        self.head_kernel = np.asarray(dense.kernel.numpy(), np.float32)
        self.head_bias = np.asarray(dense.bias.numpy(), np.float32)
        self.maps = maps
        self.classifier = classifier

    def predict(self, tiles: np.ndarray, with_features: bool = False) -> BackendOutput:
        f = self.maps(tiles).astype(np.float32)
        cams = f @ self.head_kernel + self.head_bias
        logits = cams.mean(axis=(1, 2))
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return BackendOutput(e / e.sum(axis=1, keepdims=True), cams, f if with_features else None)


def check_against_keras(backend: CachedHeadBackend, pixels: np.ndarray) -> float:
    """Largest |probability difference| between this backend and the Keras backend on `pixels`."""
    from detector.backends.keras_backend import KerasBackend

    keras_backend = KerasBackend(backend.classifier, backend.meta)
    return float(np.abs(keras_backend.predict(pixels).probs - backend.predict(pixels).probs).max())
