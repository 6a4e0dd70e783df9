"""Classifier backends: tiles in, class probabilities and per-location class logits (CAMs) out.

The pipeline holds one `Backend` and never asks which runtime is behind it. `open_backend` picks the
plug from the model path (a model directory -> Keras; a `.onnx` file -> onnxruntime) or a name in
`BACKENDS`, the one table of plugs: a new runtime is one module and one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from detector.backends.base import Backend, BackendOutput
from detector.errors import ModelDirError
from detector.options import check_fields, option

__all__ = ["BACKENDS", "Backend", "BackendOutput", "ModelSource", "load_model", "open_backend"]

#: backend name -> "module:class"; each class has `load(path, shared_cpu) -> Backend`.
BACKENDS = {
    "keras": "detector.backends.keras_backend:KerasBackend",
    "onnx": "detector.backends.onnx_backend:OnnxBackend",
}


def backend_for(path: Path, backend: str = "auto") -> str:
    """The plug's name: `backend`, or for auto the one the path is for (a .onnx file -> onnx)."""
    if backend == "auto":
        return "onnx" if path.suffix.lower() == ".onnx" else "keras"
    if backend not in BACKENDS:
        raise ModelDirError(f"unknown backend '{backend}': use auto, {', '.join(BACKENDS)}")
    return backend


def open_backend(model: str | Path, backend: str = "auto", shared_cpu: bool = False) -> Backend:
    """`shared_cpu`: the model's calls share the cores with other busy threads (a server's request
    handlers), so the runtime should not keep idle threads spinning (measured in benchmarks/serve_load.py:
    onnxruntime's default spin-waiting cost the server 10-25% of its throughput on 2 cores)."""
    path = Path(model)
    module, cls = BACKENDS[backend_for(path, backend)].split(":")
    try:
        plug = getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise ModelDirError(f"the {backend_for(path, backend)} backend is not available here: {e}") from None
    return plug.load(path, shared_cpu)


@dataclass(frozen=True)
class ModelSource:
    """Which model a command opens, and with which runtime (declared once for scan and serve)."""

    model: str | None = option(None, "Model directory or .onnx file (default: $DETECT_MODEL, else the demo model).")
    backend: str = option("auto", "auto, keras or onnx.", choices=("auto", *BACKENDS))

    def __post_init__(self) -> None:
        check_fields(self)


def load_model(model: str | Path, backend: str = "auto") -> Backend:
    """The model as a Backend, ready for `Detector(backend)` or the evaluation functions.

    Example:
        >>> backend = load_model("demo-output/model.onnx")  # doctest: +SKIP
        >>> backend.meta.classes  # doctest: +SKIP
        ['demo', 'no-logo']
    """
    return open_backend(model, backend)
