"""Scan options from a request: query parameters or form fields, named and checked like the CLI's.

The same names work in the query string (`?heatmap=true&scales=1,0.5`) and as multipart form fields
(what an HTML form sends); a form field wins over a query parameter of the same name. This module only
turns text into values (a bool, a number, a list of scales); the ranges are checked by `ScanOptions`
itself, the one validation the CLI and the Python API use too, and its `OptionError` becomes a 422
that names the option. `max_windows` may only lower the server's own budget (`--max-windows`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from detector.errors import DetectorError
from detector.pipeline.options import OptionError, parse_scales
from detector.pipeline.scan import ScanOptions
from detector.serve.errors import ApiError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: name -> (OpenAPI type, help text, the ScanOptions field); the API docs come from this one table.
OPTIONS: dict[str, tuple[str, str]] = {
    "boxes": ("boolean", "Find boxes (default true); false gives verdicts and scores only, faster."),
    "heatmap": ("boolean", "Add `heatmaps`: per label, a PNG data URL (RGBA, JET colours, alpha = evidence)."),
    "cam_threshold": (
        "number",
        "Box pixels: this fraction of a tile map's peak, 0..1 (default: the model's calibrated one).",
    ),
    "tile_threshold": ("number", "Tile probability that counts as evidence, 0..1 (default: the model's)."),
    "scales": ("string", "Pyramid scales, e.g. `1,0.5,0.25`: 1 to 8 numbers, 0.001..max_upscale."),
    "min_logo": ("number", "Smallest logo to look for, pixels (1..1e6)."),
    "max_logo": ("number", "Largest logo to look for, pixels (1..1e6)."),
    "merge": ("string", "Boxes across pyramid levels: nms (default), fuse or finest."),
    "cam_method": ("string", "gradcam (default) or gradcam++."),
    "overlap": ("number", "Tile overlap, 0..0.75 (default 0.5)."),
    "mode": ("string", "tiles (default: cut every window) or dense (one backbone pass per pyramid level)."),
    "box_calibration": (
        "boolean",
        "Apply the box size correction and box scores fitted by `detect calibrate` (default true).",
    ),
    "max_upscale": ("number", "No pyramid level enlarges the image more than this (0.05..16, default 2)."),
    "max_windows": ("integer", "Windows per image over all levels; at most the server's --max-windows."),
}
_FIELD = {"box_calibration": "calibrated_boxes"}
_KIND = {name: t for name, (t, _) in OPTIONS.items()}


@dataclass(frozen=True)
class RequestOptions:
    scan: ScanOptions
    heatmap: bool


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_option", message)


def _value(name: str, text: str) -> Any:
    """One option's text as the value ScanOptions takes (its range is checked there)."""
    kind = _KIND[name]
    v = text.strip()
    if kind == "boolean":
        if v.lower() in _TRUE:
            return True
        if v.lower() in _FALSE:
            return False
        raise _invalid(f"{name} must be true or false, got '{text[:40]}'")
    if name == "scales":
        return parse_scales(v)
    if kind == "integer":
        try:
            return int(v)
        except ValueError:
            raise _invalid(f"{name} must be a whole number, got '{text[:40]}'") from None
    if kind == "number":
        try:
            return float(v)
        except ValueError:
            raise _invalid(f"{name} must be a number, got '{text[:40]}'") from None
    return v


def parse_options(query: Mapping[str, str], form: Mapping[str, str], base: ScanOptions) -> RequestOptions:
    """Merge query and form values over the server's defaults; unknown names are an error (typos)."""
    given = {**{k: v for k, v in query.items()}, **form}
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        shown = ", ".join(u[:40] for u in unknown[:5])
        raise _invalid(f"unknown option(s): {shown}; known: {', '.join(OPTIONS)}")
    changes: dict[str, Any] = {"heatmap": False, "boxes": True, "cam_threshold": None, "tile_threshold": None}
    try:
        for name, text in given.items():
            if text.strip():
                changes[_FIELD.get(name, name)] = _value(name, text)
        if changes.get("max_windows", base.max_windows) > base.max_windows:
            raise OptionError("max_windows", f"must be at most {base.max_windows} (the server's --max-windows)")
        opts = replace(base, **changes)
    except OptionError as e:
        raise _invalid(str(e)) from None
    except DetectorError as e:  # pragma: no cover - ScanOptions raises only OptionError
        raise _invalid(str(e)) from None
    return RequestOptions(opts, opts.heatmap)
