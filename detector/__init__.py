"""logo-detector: find brand logos in photos and say where they are.

The public API, importable from here (loaded on first use, so `import detector` stays light):

    from detector import Detector, ScanOptions
    det = Detector.load("demo-output/model")
    print(det.scan("photo.jpg").boxes)

The stages live in subpackages, in the order data flows (README, "Layout"): data/ and synth/ make
training data, training/ fits the model, model/ and backends/ load and run it, pipeline/ turns one image
into results (tiles -> scores + CAMs -> boxes), results/ writes them, report/ and video/ summarize them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "Detector": "detector.api",
    "default_model_path": "detector.api",
    "ScanOptions": "detector.pipeline.options",
    "OptionError": "detector.options",
    "DetectorError": "detector.errors",
    "ImageLimits": "detector.images",
    "ScanResult": "detector.results.record",
    "Detection": "detector.geometry",
    "Detections": "detector.geometry",
    "open_backend": "detector.backends",
    "load_model": "detector.backends",
    "synthesize": "detector.synth",
    "SynthConfig": "detector.synth",
    "SceneConfig": "detector.synth",
    "train": "detector.training",
    "TrainConfig": "detector.training",
    "export_model": "export.onnx_export",
}
__all__ = [
    "Detection",
    "Detections",
    "Detector",
    "DetectorError",
    "ImageLimits",
    "OptionError",
    "ScanOptions",
    "ScanResult",
    "SceneConfig",
    "SynthConfig",
    "TrainConfig",
    "default_model_path",
    "export_model",
    "load_model",
    "open_backend",
    "synthesize",
    "train",
]
assert sorted(__all__) == sorted(_EXPORTS)  # one list, checked at import

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from detector.api import Detector, default_model_path
    from detector.backends import load_model, open_backend
    from detector.errors import DetectorError
    from detector.geometry import Detection, Detections
    from detector.images import ImageLimits
    from detector.options import OptionError
    from detector.pipeline.options import ScanOptions
    from detector.results.record import ScanResult
    from detector.synth import SceneConfig, SynthConfig, synthesize
    from detector.training import TrainConfig, train
    from export.onnx_export import export_model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'detector' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
