"""Classifier backends: tiles in, class probabilities and per-location class logits (CAMs) out.

The pipeline holds one `Backend` and never asks which runtime is behind it. `open_backend` picks the
plug from the model path (a model directory -> Keras; a `.onnx` file -> onnxruntime) or `--backend`.
"""

from __future__ import annotations

from pathlib import Path

from detector.backends.base import Backend, BackendOutput
from detector.errors import ModelDirError

__all__ = ["Backend", "BackendOutput", "open_backend"]


def open_backend(model: str | Path, backend: str = "auto", shared_cpu: bool = False) -> Backend:
    """`shared_cpu`: the model's calls share the cores with other busy threads (a server's request
    handlers), so the runtime should not keep idle threads spinning (measured in benchmarks/serve_load.py:
    onnxruntime's default spin-waiting cost the server 10-25% of its throughput on 2 cores)."""
    path = Path(model)
    kind = backend
    if kind == "auto":
        kind = "onnx" if path.suffix.lower() == ".onnx" else "keras"
    if kind == "keras":
        from detector.backends.keras_backend import KerasBackend

        return KerasBackend.load(path)
    if kind == "onnx":
        try:
            from detector.backends.onnx_backend import OnnxBackend
        except ImportError:
            raise ModelDirError("the ONNX backend is not available in this version") from None
        return OnnxBackend.load(path, shared_cpu)
    raise ModelDirError(f"unknown backend '{backend}': use auto, keras or onnx")
