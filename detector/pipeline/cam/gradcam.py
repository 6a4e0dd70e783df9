"""Grad-CAM in closed form, from the per-location logits every backend returns (ONNX too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from detector.backends.base import Backend
    from detector.pipeline.evidence import TileEvidence


def gradcam_from_cams(cams: np.ndarray, bias: np.ndarray, c: int, neg: int) -> np.ndarray:
    """Grad-CAM maps (N, h, w) of y = z_c - z_neg from the per-location logits a backend returns."""
    h, w = cams.shape[1:3]
    contrast = (cams[..., c] - bias[c]) - (cams[..., neg] - bias[neg])
    return np.maximum(contrast, 0.0) / (h * w)


class GradCam:
    needs_features = False

    def maps(self, ev: TileEvidence, backend: Backend, tiles: np.ndarray, c: int, neg: int) -> np.ndarray:
        return gradcam_from_cams(ev.cams[tiles], backend.head_bias, c, neg)
