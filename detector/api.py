"""The Python API, as small as the CLI: `Detector.load(path)` and `detector.scan(image_or_path)`.

    from detector import Detector
    det = Detector.load("demo-output/model")
    result = det.scan("photo.jpg")
    print(result.has_logo, [b.as_dict() for b in result.boxes])

The CLI, the server and the benchmarks all call this.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from detector.backends import Backend, open_backend
from detector.errors import DetectorError, ImageLoadError
from detector.images import ImageLimits, LoadedImage, load_image
from detector.pipeline.options import ScanOptions
from detector.pipeline.scan import scan_pixels
from detector.results.record import ScanResult

DEMO_MODEL = Path("demo-output") / "model"


def default_model_path() -> Path:
    """$DETECT_MODEL, else the demo model that `make demo` builds (next to the project or the cwd)."""
    env = os.environ.get("DETECT_MODEL")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (base / DEMO_MODEL / "model.json").is_file():
            return base / DEMO_MODEL
    raise DetectorError(
        "no model given: pass --model PATH, set DETECT_MODEL, or run `make demo` to build the demo model"
    )


class Detector:
    """A loaded model, the scan options it uses unless a call passes others, and the decoder's limits.

    Example:
        >>> from detector import Detector, ScanOptions
        >>> det = Detector.load("demo-output/model", options=ScanOptions(mode="dense"))  # doctest: +SKIP
        >>> result = det.scan("photo.jpg")  # doctest: +SKIP
        >>> result.has_logo, [b.label for b in result.boxes]  # doctest: +SKIP
        (True, ['demo'])
    """

    def __init__(self, backend: Backend, options: ScanOptions | None = None, limits: ImageLimits | None = None):
        self.backend = backend
        self.options = _checked(options, ScanOptions(), ScanOptions, "options")
        self.limits = _checked(limits, ImageLimits(), ImageLimits, "limits")

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        backend: str = "auto",
        options: ScanOptions | None = None,
        limits: ImageLimits | None = None,
        shared_cpu: bool = False,
    ) -> Detector:
        """Open a model directory or .onnx file (default: $DETECT_MODEL, else the demo model)."""
        _checked(options, None, ScanOptions, "options")  # before the model is loaded: a bad call fails fast
        _checked(limits, None, ImageLimits, "limits")
        return cls(open_backend(path or default_model_path(), backend, shared_cpu), options, limits)

    @property
    def max_pixels(self) -> int:
        return self.limits.max_pixels

    @property
    def max_file_bytes(self) -> int:
        return self.limits.max_file_bytes

    @property
    def meta(self):
        return self.backend.meta

    def scan(self, image: str | Path | np.ndarray, options: ScanOptions | None = None) -> ScanResult:
        """Scan a path or an RGB uint8 array. A file that cannot be read gives a result with `errors`."""
        opts = _checked(options, self.options, ScanOptions, "options")
        if isinstance(image, np.ndarray):
            return scan_pixels(self.backend, _as_rgb(image), opts)
        try:
            loaded = load_image(image, self.max_pixels, max_file_bytes=self.max_file_bytes)
        except ImageLoadError as e:
            r = self.error_result(str(image), e.reason)
            r.sha256 = e.sha256
            return r
        return self.scan_loaded(loaded, opts)

    def scan_loaded(
        self, loaded: LoadedImage, options: ScanOptions | None = None, path: str | None = None
    ) -> ScanResult:
        """Scan an image already decoded by `load_image`; the result carries its path and content hash."""
        name = loaded.path if path is None else path
        result = scan_pixels(self.backend, loaded.pixels, _checked(options, self.options, ScanOptions, "options"), name)
        result.sha256 = loaded.sha256
        return result

    def error_result(self, path: str, reason: str) -> ScanResult:
        return ScanResult(
            path=path,
            errors=[reason],
            model={"name": self.backend.model_name, "sha256": self.backend.model_sha256, "backend": self.backend.name},
        )


def _checked(value: object, default: object, kind: type, name: str) -> Any:
    """`value`, or `default` when None; anything but a `kind` (a dict, say) is a clear error."""
    if value is None:
        return default
    if not isinstance(value, kind):
        raise DetectorError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _as_rgb(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise DetectorError(f"expected an HxWx3 RGB array, got shape {a.shape}")
    return np.ascontiguousarray(a[..., :3], dtype=np.uint8)
