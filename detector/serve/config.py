"""What `detect serve` was started with: one frozen value the app and the server share."""

from __future__ import annotations

from dataclasses import dataclass

from detector.images import DEFAULT_MAX_PIXELS, MAX_PIXELS_LIMIT
from detector.options import OptionError, check_fields, option
from detector.pipeline.options import DEFAULT_MAX_WINDOWS, MAX_WINDOWS_LIMIT

#: How concurrent requests reach the model: merged into shared calls (micro-batching, the default), one
#: call at a time (a lock), or side by side (each request thread calls the runtime itself).
MODEL_CALLS = ("batched", "serial", "concurrent")


def _check_key(name: str, value: object) -> str:
    if not isinstance(value, str) or len(value) < 8:
        raise OptionError(name, "must be at least 8 characters")
    return value


@dataclass(frozen=True)
class ServeConfig:
    """How the server runs (each field declared once: `detect serve`'s flags are made from them)."""

    host: str = option("127.0.0.1", "Address to listen on (0.0.0.0 for every interface).")
    port: int = option(8000, "Port to listen on.", range=(0, 65535))
    api_key: str | None = option(
        None,
        "Require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' on /v1/*.",
        check=_check_key,
        env="DETECT_API_KEY",
    )
    max_upload_mb: float = option(20.0, "Largest file (image or zip) in MB; larger: 413.", range=(0.001, 2**20))
    max_files: int = option(100, "Most files in one request (zip members included).", range=(1, 100_000))
    max_pixels: int = option(
        DEFAULT_MAX_PIXELS, "Refuse larger images (decompression bombs): 413.", range=(1, MAX_PIXELS_LIMIT)
    )
    model_calls: str = option(
        "batched",
        "batched: merge concurrent requests' tiles into shared model calls (micro-batching); "
        "serial: one call at a time; concurrent: each request calls the model itself.",
        choices=MODEL_CALLS,
    )
    max_batch: int = option(128, "Most tiles in one shared model call.", range=(1, 4096))
    batch_wait_ms: float = option(3.0, "How long a shared call waits for more tiles.", range=(0.0, 1000.0), cli=False)
    max_queue: int = option(32, "Requests scanning at once; more get 503 + Retry-After.", range=(1, 10_000))
    scan_threads: int = option(8, "Images decoded/tiled/scanned at once.", range=(1, 256))
    batch_parallel: int = option(4, "Images of one /v1/scan/batch request scanned at once.", range=(1, 256), cli=False)
    max_windows: int = option(
        DEFAULT_MAX_WINDOWS, "Windows per image; requests may ask for fewer, not more.", range=(1, MAX_WINDOWS_LIMIT)
    )
    private: bool = option(
        False,
        "Serve the in-browser scanner at / (the `detect export-web` site): photos are scanned in the visitor's "
        "browser and never uploaded; the server only delivers files (/v1/* still answers API clients).",
    )

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def batching(self) -> bool:
        return self.model_calls == "batched"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
