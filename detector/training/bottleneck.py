"""On-disk cache of pooled backbone features, so head experiments skip the expensive backbone.

Entries are keyed by the image's content hash and by a hash of the backbone's actual weights, input
size and block: a renamed or moved photo hits the cache, a different backbone never does. Stored as
plain .npy files (never pickle), one per image, so adding photos only computes the new ones.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector.data.folders import DecodedSample
from detector.model.predict import predict_batches

if TYPE_CHECKING:
    import keras


def default_cache_dir() -> Path:
    """$DETECT_CACHE, else the user's cache folder: features outlive a run, so that the next run on the
    same photos (another head, more photos) computes only what it has not seen."""
    env = os.environ.get("DETECT_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "logo-detector" / "bottlenecks"


def backbone_key(extractor: keras.Model, input_size: int, cam_layer: str) -> str:
    """Hash of what decides the features: every weight of the backbone, the input size, the block."""
    h = hashlib.sha256(f"inception_v3|{input_size}|{cam_layer}".encode())
    for w in extractor.weights:
        h.update(np.ascontiguousarray(w.numpy()).tobytes())
    return h.hexdigest()[:24]


class BottleneckCache:
    """Features of one backbone (`key`), one .npy file per image content hash, under root/key/."""

    def __init__(self, root: Path, key: str) -> None:
        self.dir = Path(root) / key
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, sha: str) -> Path:
        return self.dir / sha[:2] / f"{sha}.npy"

    def get(self, sha: str) -> np.ndarray | None:
        p = self._path(sha)
        if not p.is_file():
            return None
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError):  # a file cut short by a kill: recompute it
            return None

    def put(self, sha: str, features: np.ndarray) -> None:
        p = self._path(sha)
        p.parent.mkdir(exist_ok=True)
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp.npy")
        np.save(tmp, features.astype(np.float32), allow_pickle=False)
        os.replace(tmp, p)


def features_for(
    decoded: list[DecodedSample],
    extractor: keras.Model,
    cache: BottleneckCache,
    batch_size: int = 32,
) -> tuple[np.ndarray, int]:
    """Features for every sample, computing only the misses. Returns (features, number computed)."""
    feats: list[np.ndarray | None] = [cache.get(d.sha256) for d in decoded]
    missing = [i for i, f in enumerate(feats) if f is None]
    if missing:
        pixels = np.stack([decoded[i].pixels for i in missing])
        computed = predict_batches(extractor, pixels, batch_size, progress="bottlenecks")
        for i, f in zip(missing, computed, strict=True):
            cache.put(decoded[i].sha256, f)
            feats[i] = f
    dim = int(extractor.output_shape[-1])
    return (np.stack(feats) if feats else np.zeros((0, dim), np.float32)), len(missing)
