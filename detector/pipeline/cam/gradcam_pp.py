"""Grad-CAM++ in closed form, from the CAM layer's feature maps and the head's kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from detector.backends.base import Backend
    from detector.pipeline.evidence import TileEvidence


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


class GradCamPlusPlus:
    needs_features = True

    def maps(self, ev: TileEvidence, backend: Backend, tiles: np.ndarray, c: int, neg: int) -> np.ndarray:
        return gradcam_pp(ev.features[tiles], backend.head_kernel, c, neg)
