"""Scan options from a request: query parameters or form fields, made from ScanOptions' declarations.

The names, types and help of the parameters are ScanOptions' own fields with `api=True`
(detector.options): the server declares none of its own, so the CLI, the Python API and the server
cannot drift apart. The same names work in the query string (`?heatmap=true&scales=1,0.5`) and as
multipart form fields (what an HTML form sends); a form field wins over a query parameter of the same
name. Text becomes a value by the declaration's `from_text`; the ranges are checked by `ScanOptions`
itself, and its `OptionError` becomes a 422 that names the option. `max_windows` may only lower the
server's own budget (`--max-windows`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from detector.options import Declared, OptionError, declared, from_text
from detector.pipeline.options import ScanOptions
from detector.serve.errors import ApiError

#: name -> its declaration, for every option a request may set.
API_OPTIONS: dict[str, Declared] = {d.name: d for d in declared(ScanOptions) if d.spec.api}
_OPENAPI_TYPE = {bool: "boolean", int: "integer", float: "number"}
#: What a request gets when it does not say: these do not follow the server's start-up options.
REQUEST_DEFAULTS = {"heatmap": False, "boxes": True, "cam_threshold": None, "tile_threshold": None}


def openapi_type(d: Declared) -> str:
    return _OPENAPI_TYPE.get(d.kind, "string")


def describe(d: Declared) -> str:
    """The help text of the API docs: the declaration's, with its default."""
    default = REQUEST_DEFAULTS.get(d.name, d.default)
    shown = "the model's" if default is None else str(default).lower() if isinstance(default, bool) else default
    return f"{d.spec.help} Default: {shown}."


@dataclass(frozen=True)
class RequestOptions:
    scan: ScanOptions
    heatmap: bool


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_option", message)


def parse_options(query: Mapping[str, str], form: Mapping[str, str], base: ScanOptions) -> RequestOptions:
    """Merge query and form values over the server's defaults; unknown names are an error (typos)."""
    given = {**{k: v for k, v in query.items()}, **form}
    unknown = sorted(set(given) - set(API_OPTIONS))
    if unknown:
        shown = ", ".join(u[:40] for u in unknown[:5])
        raise _invalid(f"unknown option(s): {shown}; known: {', '.join(API_OPTIONS)}")
    changes: dict[str, Any] = dict(REQUEST_DEFAULTS)
    try:
        for name, text in given.items():
            if text.strip():
                changes[name] = from_text(API_OPTIONS[name], text)
        if changes.get("max_windows", base.max_windows) > base.max_windows:
            raise OptionError("max_windows", f"must be at most {base.max_windows} (the server's --max-windows)")
        opts = replace(base, **changes)
    except OptionError as e:
        raise _invalid(str(e)) from None
    return RequestOptions(opts, opts.heatmap)
