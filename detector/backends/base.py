"""The backend interface every runtime implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from detector.model.meta import ModelMeta


@dataclass(frozen=True)
class BackendOutput:
    probs: np.ndarray  # (N, classes) softmax probabilities
    cams: np.ndarray  # (N, h, w, classes) per-location class logits: feature map @ head kernel + bias
    features: np.ndarray | None = None  # (N, h, w, channels) the CAM layer's map, when asked for


class Backend(Protocol):
    """A loaded classifier. `predict` is the only call the pipeline makes per batch."""

    meta: ModelMeta
    name: str  # e.g. "keras" or "onnx (CPUExecutionProvider)"
    model_name: str
    model_sha256: str
    head_kernel: np.ndarray  # (channels, classes): Grad-CAM weights in closed form
    head_bias: np.ndarray  # (classes,)

    def predict(self, tiles: np.ndarray, with_features: bool = False) -> BackendOutput:
        """tiles: (N, S, S, 3) RGB pixels 0..255 (uint8 or float)."""
        ...
