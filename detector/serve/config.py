"""What `detect serve` was started with: one frozen value the app and the server share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detector.errors import DetectorError
from detector.images import DEFAULT_MAX_PIXELS
from detector.pipeline.options import DEFAULT_MAX_WINDOWS, MAX_WINDOWS_LIMIT

#: How concurrent requests reach the model: merged into shared calls (micro-batching, the default), one
#: call at a time (a lock), or side by side (each request thread calls the runtime itself).
MODEL_CALLS = ("batched", "serial", "concurrent")


@dataclass(frozen=True)
class ServeConfig:
    model: Path | None = None  # None: detector.api.default_model_path()
    backend: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # None: /v1/* is open
    max_upload_mb: float = 20.0  # one file (an image, or a zip for /v1/scan/batch)
    max_files: int = 100  # per request, zip members included
    max_pixels: int = DEFAULT_MAX_PIXELS
    model_calls: str = "batched"  # batched (micro-batching) | serial (one call at a time) | concurrent
    max_batch: int = 128  # tiles in one shared model call
    batch_wait_ms: float = 3.0
    max_queue: int = 32  # requests scanning or waiting to scan; more get 503
    scan_threads: int = 8  # images scanned at once (they share model calls)
    batch_parallel: int = 4  # images of one /v1/scan/batch request scanned at once
    max_windows: int = DEFAULT_MAX_WINDOWS  # windows per image; a request may ask for fewer, never more

    @property
    def batching(self) -> bool:
        return self.model_calls == "batched"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def validate(self) -> None:
        checks = [
            (self.max_upload_mb > 0, "--max-upload-mb must be positive"),
            (self.max_files >= 1, "--max-files must be at least 1"),
            (self.max_pixels >= 1, "--max-pixels must be positive"),
            (self.max_batch >= 1, "--max-batch must be at least 1"),
            (self.max_queue >= 1, "--max-queue must be at least 1"),
            (self.scan_threads >= 1, "--scan-threads must be at least 1"),
            (self.batch_parallel >= 1, "batch_parallel must be at least 1"),
            (self.api_key is None or len(self.api_key) >= 8, "--api-key must be at least 8 characters"),
            (0 <= self.port <= 65535, "--port must be 0..65535"),
            (self.model_calls in MODEL_CALLS, f"--model-calls must be one of {', '.join(MODEL_CALLS)}"),
            (1 <= self.max_windows <= MAX_WINDOWS_LIMIT, f"--max-windows must be 1..{MAX_WINDOWS_LIMIT}"),
        ]
        for ok, message in checks:
            if not ok:
                raise DetectorError(message)
