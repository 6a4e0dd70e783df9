"""One uploaded file -> one result dict, the same dict `detect scan --format json` prints.

Runs in a worker thread (decoding and tiling are CPU work). The result is `ScanResult.as_dict()`; with
`heatmap=true` a `heatmaps` key is added: per label, a PNG data URL of an RGBA overlay at the
stitched map's resolution (at most 640 px on the long side), JET colours with alpha rising with the
evidence, meant to be stretched over the image (`<img>` on top, or drawn on a canvas).
"""

from __future__ import annotations

import base64
from typing import Any

import cv2
import numpy as np

from detector.api import Detector
from detector.errors import ImageLoadError
from detector.images import load_image
from detector.pipeline.tiling import BudgetError
from detector.report.exposure import add_exposure, image_thresholds
from detector.results.membudget import DEFAULT_DECODE_MEMORY, MemoryBudget, decode_cost
from detector.serve.errors import ApiError, load_error
from detector.serve.options import RequestOptions
from detector.serve.uploads import Upload

#: One budget for every request thread of the process: the images being decoded and scanned at once
#: never hold more than this (one image larger than all of it runs alone).
DECODE_BUDGET = MemoryBudget(DEFAULT_DECODE_MEMORY)


def heatmap_data_url(heat: np.ndarray) -> str:
    """A [0, 1] map as a transparent PNG overlay (data URL): hot = opaque red, cold = clear."""
    h = np.clip(np.nan_to_num(heat.astype(np.float32)), 0, 1)
    bgr = cv2.applyColorMap((h * 255).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = (np.clip(h * 1.5, 0, 1) * 0.7 * 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", np.dstack([bgr, alpha]))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 BGRA array
        raise RuntimeError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _scan_loaded(det: Detector, upload: Upload, opts: RequestOptions) -> dict[str, Any]:
    assert upload.path is not None
    with DECODE_BUDGET.hold(decode_cost(upload.path, det.max_file_bytes, det.max_pixels)):
        loaded = load_image(upload.path, det.max_pixels, max_file_bytes=det.max_file_bytes)  # ImageLoadError
        result = det.scan_loaded(loaded, opts.scan, upload.name)  # BudgetError: over max_windows
        add_exposure(result, loaded.pixels, image_thresholds(det.meta))  # the CLI's record, field for field
    record = result.as_dict()
    if opts.heatmap:
        record["heatmaps"] = {label: heatmap_data_url(m) for label, m in (result.heatmaps or {}).items()}
    return record


def scan_upload(det: Detector, upload: Upload, opts: RequestOptions) -> dict[str, Any]:
    """For /v1/scan: a file that is not a usable image raises the ApiError of its reason (413/415/422)."""
    if upload.path is None:
        raise load_error(upload.name, upload.error)
    try:
        return _scan_loaded(det, upload, opts)
    except ImageLoadError as e:
        raise load_error(upload.name, e.reason, e.kind) from None
    except BudgetError as e:  # the image is fine, its scan is not possible within the budget
        raise ApiError(422, "over_budget", f"{upload.name}: {e}") from None


def scan_record(det: Detector, upload: Upload, opts: RequestOptions) -> dict[str, Any]:
    """For /v1/scan/batch: never raises for a bad file; it becomes an error record like the CLI's."""
    if upload.path is None:
        return det.error_result(upload.name, upload.error).as_dict()
    try:
        return _scan_loaded(det, upload, opts)
    except ImageLoadError as e:
        r = det.error_result(upload.name, e.reason)
        r.sha256 = e.sha256
        return r.as_dict()
    except BudgetError as e:
        return det.error_result(upload.name, str(e)).as_dict()
