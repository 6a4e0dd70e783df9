"""The Python API, as small as the CLI: `Detector.load(path)` and `detector.scan(image_or_path)`.

    from detector.api import Detector
    det = Detector.load("demo-output/model")
    result = det.scan("photo.jpg")
    print(result.has_logo, [b.as_dict() for b in result.boxes])

The CLI, the server and the benchmarks all call this.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from detector.backends import Backend, open_backend
from detector.errors import DetectorError, ImageLoadError
from detector.images import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, LoadedImage, load_image
from detector.pipeline.options import check_int
from detector.pipeline.scan import ScanOptions, scan_pixels
from detector.results.record import ScanResult

#: The most pixels --max-pixels may allow (a 100,000 x 100,000 image; 30 GB decoded).
MAX_PIXELS_LIMIT = 10**10

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
    """A loaded model and the scan options it uses unless a call passes others.

    `max_pixels` and `max_file_bytes` are the decoder's limits: a file over either is refused (from
    its header, or from stat before a byte is read) with an error result, never decoded."""

    def __init__(
        self,
        backend: Backend,
        options: ScanOptions | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ):
        self.backend = backend
        self.options = _checked_options(options, ScanOptions())
        self.max_pixels = check_int("max_pixels", max_pixels, 1, MAX_PIXELS_LIMIT)
        self.max_file_bytes = check_int("max_file_bytes", max_file_bytes, 1, 2**50)

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        backend: str = "auto",
        options: ScanOptions | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        shared_cpu: bool = False,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> Detector:
        _checked_options(options, None)  # before the model is loaded: a bad call fails fast
        return cls(open_backend(path or default_model_path(), backend, shared_cpu), options, max_pixels, max_file_bytes)

    @property
    def meta(self):
        return self.backend.meta

    def scan(self, image: str | Path | np.ndarray, options: ScanOptions | None = None) -> ScanResult:
        """Scan a path or an RGB uint8 array. A file that cannot be read gives a result with `errors`."""
        opts = _checked_options(options, self.options)
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
        result = scan_pixels(self.backend, loaded.pixels, _checked_options(options, self.options), name)
        result.sha256 = loaded.sha256
        return result

    def error_result(self, path: str, reason: str) -> ScanResult:
        return ScanResult(
            path=path,
            errors=[reason],
            model={"name": self.backend.model_name, "sha256": self.backend.model_sha256, "backend": self.backend.name},
        )


def _checked_options(options: object, default: ScanOptions | None) -> ScanOptions | None:
    """`options`, or `default` when None; anything but a ScanOptions (a dict, say) is a clear error."""
    if options is None:
        return default
    if not isinstance(options, ScanOptions):
        raise DetectorError(f"options must be a ScanOptions, got {type(options).__name__}")
    return options


def _as_rgb(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise DetectorError(f"expected an HxWx3 RGB array, got shape {a.shape}")
    return np.ascontiguousarray(a[..., :3], dtype=np.uint8)
