"""CLI flags made from option declarations (detector.options), so each option is declared once.

A command asks for a whole settings dataclass; each of its declared fields with `cli=True` becomes
one Typer option (or argument) with the declaration's name, type, default and help, and the command
receives the built instance, whose own checks have run:

    @app.command()
    @with_flags
    def scan(inputs: list[Path], opts: ScanOptions) -> None: ...

A field declared by two dataclasses of one command (the server's and the scan's `max_windows`) is one
flag whose value goes to both.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from detector.options import Declared, declared, from_text, text_of


def _is_settings(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation) and bool(declared(annotation))


def _cli_type(d: Declared) -> Any:
    if d.kind is list:
        return list[str]
    if d.spec.parse is not None or d.kind in (tuple, Path):
        base: Any = str
    else:
        base = d.kind
    return base | None if (d.optional or d.spec.parse is not None) else base


def _cli_default(d: Declared) -> Any:
    if d.required:
        return inspect.Parameter.empty
    if d.kind is list:
        return None if not d.default else list(d.default)
    if d.spec.parse is not None:
        return None if d.default is None else text_of(d.default)
    return d.default


def _parameter(d: Declared) -> inspect.Parameter:
    decls = [d.spec.flag] if d.spec.flag else []
    if d.spec.argument:
        info = typer.Argument(help=d.spec.help)
    else:
        info = typer.Option(*decls, help=d.spec.help, envvar=d.spec.env)
    kind = inspect.Parameter.KEYWORD_ONLY  # Click calls commands with keywords: any order of defaults works
    return inspect.Parameter(d.name, kind, default=_cli_default(d), annotation=Annotated[_cli_type(d), info])


def _value(d: Declared, given: Any) -> Any:
    """The CLI's value as the dataclass takes it (text parsed, paths as text, lists as lists)."""
    if given is None:
        return None if (d.optional or d.default is None) else d.default
    if d.kind is list:
        return [str(v) for v in given]
    if d.spec.parse is not None and isinstance(given, str):
        return from_text(d, given)
    if isinstance(given, Path):
        return str(given)
    return given


def with_flags(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with each settings-dataclass parameter expanded into its declared flags (see the module)."""
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if not _is_settings(p.annotation)]
    groups = {p.name: p.annotation for p in sig.parameters.values() if _is_settings(p.annotation)}
    taken = {p.name for p in own}
    generated: dict[str, inspect.Parameter] = {}
    for cls in groups.values():
        for d in declared(cls):
            if d.spec.cli and d.name not in taken and d.name not in generated:
                generated[d.name] = _parameter(d)
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + list(generated.values())

    @functools.wraps(fn)
    def wrapper(**given: Any) -> Any:
        built = {}
        for pname, cls in groups.items():
            values = {d.name: _value(d, given[d.name]) for d in declared(cls) if d.spec.cli and d.name in generated}
            built[pname] = cls(**values)
        return fn(**{p.name: given[p.name] for p in own}, **built)

    del wrapper.__wrapped__  # Typer must see the generated signature, not fn's
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
