"""Scan options from a request: query parameters or form fields, named and checked like the CLI's.

The same names work in the query string (`?heatmap=true&scales=1,0.5`) and as multipart form fields
(what an HTML form sends); a form field wins over a query parameter of the same name. Values are
validated by `ScanOptions.validate`, the CLI's own check, so both front ends accept the same things.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from detector.errors import DetectorError
from detector.scan import ScanOptions
from detector.serve.errors import ApiError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: name -> (OpenAPI type, help text); the API docs of query and form fields come from this one table.
OPTIONS: dict[str, tuple[str, str]] = {
    "boxes": ("boolean", "Find boxes (default true); false gives verdicts and scores only, faster."),
    "heatmap": ("boolean", "Add `heatmaps`: per label, a PNG data URL (RGBA, JET colours, alpha = evidence)."),
    "cam_threshold": (
        "number",
        "Box pixels: this fraction of a tile map's peak (default: the model's calibrated one).",
    ),
    "tile_threshold": ("number", "Tile probability that counts as evidence (default: the model's per-class ones)."),
    "scales": ("string", "Pyramid scales, e.g. `1,0.5,0.25` (default: logos of 6%..70% of the short side)."),
    "min_logo": ("number", "Smallest logo to look for, pixels."),
    "max_logo": ("number", "Largest logo to look for, pixels."),
    "merge": ("string", "Boxes across pyramid levels: nms (default), fuse or finest."),
    "cam_method": ("string", "gradcam (default) or gradcam++."),
    "overlap": ("number", "Tile overlap, 0..1 (default 0.5)."),
    "mode": ("string", "tiles (default: cut every window) or dense (one backbone pass per pyramid level)."),
    "box_calibration": (
        "boolean",
        "Apply the box size correction and box scores fitted by `detect calibrate` (default true).",
    ),
}


@dataclass(frozen=True)
class RequestOptions:
    scan: ScanOptions
    heatmap: bool


def _bool(name: str, value: str | None, default: bool) -> bool:
    v = (value or "").strip().lower()
    if not v:
        return default
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ApiError(422, "invalid_option", f"{name} must be true or false, got '{value}'")


def _float(name: str, value: str) -> float | None:
    if not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise ApiError(422, "invalid_option", f"{name} must be a number, got '{value}'") from None


def parse_options(query: Mapping[str, str], form: Mapping[str, str], base: ScanOptions) -> RequestOptions:
    """Merge query and form values over the server's defaults; unknown names are an error (typos)."""
    given = {**{k: v for k, v in query.items()}, **form}
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ApiError(422, "invalid_option", f"unknown option(s): {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    scales = None
    if given.get("scales", "").strip():
        try:
            scales = tuple(float(x) for x in given["scales"].split(","))
        except ValueError:
            raise ApiError(422, "invalid_option", "scales takes numbers separated by commas, e.g. 1,0.5,0.25") from None
    heatmap = _bool("heatmap", given.get("heatmap"), False)
    overlap = _float("overlap", given.get("overlap", ""))
    opts = ScanOptions(
        scales=scales or base.scales,
        min_logo=_float("min_logo", given.get("min_logo", "")) or base.min_logo,
        max_logo=_float("max_logo", given.get("max_logo", "")) or base.max_logo,
        overlap=base.overlap if overlap is None else overlap,
        batch_size=base.batch_size,
        boxes=_bool("boxes", given.get("boxes"), True),
        heatmap=heatmap,
        cam_threshold=_float("cam_threshold", given.get("cam_threshold", "")),
        cam_method=given.get("cam_method", "").strip() or base.cam_method,
        tile_threshold=_float("tile_threshold", given.get("tile_threshold", "")),
        merge=given.get("merge", "").strip() or base.merge,
        mode=given.get("mode", "").strip() or base.mode,
        calibrated_boxes=_bool("box_calibration", given.get("box_calibration"), base.calibrated_boxes),
    )
    try:
        opts.validate()
    except DetectorError as e:
        raise ApiError(422, "invalid_option", str(e).replace("--", "").replace("-", "_")) from None
    for name in ("cam_threshold", "tile_threshold"):
        v = getattr(opts, name)
        if v is not None and not 0 <= v <= 1:
            raise ApiError(422, "invalid_option", f"{name} must be in [0, 1]")
    if (opts.min_logo is not None and opts.min_logo <= 0) or (opts.max_logo is not None and opts.max_logo <= 0):
        raise ApiError(422, "invalid_option", "min_logo and max_logo must be positive pixel sizes")
    return RequestOptions(opts, heatmap)
