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

from typing import TYPE_CHECKING, Protocol

import numpy as np

from detector.pipeline.cam.gradcam import GradCam, gradcam_from_cams
from detector.pipeline.cam.gradcam_pp import GradCamPlusPlus, gradcam_pp
from detector.pipeline.cam.tape import gradcam_tape

if TYPE_CHECKING:
    from detector.backends.base import Backend
    from detector.pipeline.evidence import TileEvidence

__all__ = ["CAM_METHODS", "CamMethod", "gradcam_from_cams", "gradcam_pp", "gradcam_tape"]


class CamMethod(Protocol):
    """How the maps of class `c` (against the negative class `neg`) are made for some tiles.

    `needs_features`: the method reads the CAM layer's feature maps, which the backend then returns."""

    needs_features: bool

    def maps(self, ev: TileEvidence, backend: Backend, tiles: np.ndarray, c: int, neg: int) -> np.ndarray:
        """(len(tiles), h, w) non-negative maps for the tiles at indices `tiles`."""
        ...


#: name -> method; a new CAM variant is one small module and one line here.
CAM_METHODS: dict[str, CamMethod] = {"gradcam": GradCam(), "gradcam++": GradCamPlusPlus()}
