"""Start the server: load the model once, wrap its backend for micro-batching, hand the app to uvicorn.

The model is loaded before uvicorn binds the port, so a bad `--model` is the CLI's usual one-line
error and the port never answers with a server that cannot scan. uvicorn handles SIGTERM/SIGINT by
finishing the in-flight requests; the app's lifespan then stops the scan threads and the batching
worker.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from detector.api import Detector
from detector.backends import Backend, ModelSource
from detector.images import ImageLimits
from detector.pipeline.options import ScanOptions
from detector.serve.batching import MicroBatchingBackend, SerialBackend
from detector.serve.config import ServeConfig

log = logging.getLogger("detector.serve")


def warm_up(backend: Backend) -> None:
    """Two calls of different batch sizes before the first request.

    The Keras backend's tf.function traces once per new input shape until a second shape makes it
    trace a batch-size-agnostic graph; under load that second trace (~0.5 s) would land on a user's
    request, and with micro-batching the batch sizes vary from the first merged call on.
    """
    size = backend.meta.input_size
    for n in (1, 2):
        backend.predict(np.zeros((n, size, size, 3), np.uint8))


def build_detector(source: ModelSource, config: ServeConfig) -> Detector:
    """The model, loaded once; its backend wrapped by the micro-batcher or the one-call-at-a-time lock."""
    limits = ImageLimits(max_pixels=config.max_pixels, max_file_mb=config.max_upload_mb)
    opts = ScanOptions(max_windows=config.max_windows)
    det = Detector.load(source.model, source.backend, opts, limits, shared_cpu=True)
    warm_up(det.backend)
    if config.model_calls == "concurrent":
        return det
    if config.model_calls == "serial":
        return Detector(SerialBackend(det.backend), det.options, det.limits)
    batcher = MicroBatchingBackend(det.backend, config.max_batch, config.batch_wait_ms)
    return Detector(batcher, det.options, det.limits)


def serve(source: ModelSource, config: ServeConfig, access_log: bool = True) -> None:
    """Blocks until the server is stopped (SIGTERM / Ctrl-C).

    Example:
        >>> serve(ModelSource("demo-output/model.onnx"), ServeConfig(port=8080))  # doctest: +SKIP
    """
    from detector.serve.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    detector = build_detector(source, config)
    if not config.private:  # no temp folder unless --private builds a site (the server leaves nothing behind)
        return _run(create_app(config, detector), detector, config, access_log)
    with tempfile.TemporaryDirectory(prefix="detect-serve-site-") as tmp:
        site = private_site(source, Path(tmp) / "site")
        _run(create_app(config, detector, site), detector, config, access_log)


def private_site(source: ModelSource, out: Path) -> Path:
    """`serve --private`: the in-browser scanner's site for the served model, built for this run."""
    from detector.api import default_model_path
    from detector.web import WebExport, export_web

    site = export_web(WebExport(str(source.model or default_model_path()), out=str(out)), log=log.info)
    log.info("private: / is the in-browser scanner (%s); photos are scanned on the visitor's device", site.default)
    return out


def _run(app: Any, detector: Detector, config: ServeConfig, access_log: bool) -> None:
    import uvicorn

    batching = {
        "batched": f"micro-batching up to {config.max_batch} tiles",
        "serial": "model calls one at a time",
        "concurrent": "model calls side by side",
    }[config.model_calls]
    log.info(
        "model %s (%s, %d px tiles), %s, %s",
        detector.backend.model_name,
        detector.backend.name,
        detector.meta.input_size,
        batching,
        "API key required" if config.api_key else "no API key",
    )
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        access_log=access_log,
        timeout_graceful_shutdown=30,
        log_level="info",
    )
