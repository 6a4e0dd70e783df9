"""Each option declared once, in its dataclass field: name, type, default, range and help.

`ScanOptions`, `TrainConfig`, `SceneConfig` and the other settings declare their fields with `option(...)`.
Everything else is derived from that one declaration:
- the constructor checks every value (`check_fields`), so no front end can pass a value that crashes
  later; a bad one raises `OptionError`, whose message names the option (not a CLI flag);
- the CLI builds its flags from it (detector.console.flags);
- the server builds its query/form parameters and API docs from it (detector.serve.options).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Knobs:
    ...     overlap: float = option(0.5, "Tile overlap.", range=(0.0, 0.75))
    ...     def __post_init__(self) -> None:
    ...         check_fields(self)
    >>> Knobs(0.9)
    Traceback (most recent call last):
    ...
    detector.options.OptionError: overlap must be a finite number in [0, 0.75], got 0.9
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass
from typing import Any

from detector.errors import DetectorError

_SPEC = "logo-detector/option"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class OptionError(DetectorError):
    """An option outside its range; `option` is its name (the server's 422 names it too)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option} {message}")
        self.option = option


@dataclass(frozen=True)
class Spec:
    """What a field declares beyond its type and default.

    `parse` turns the text a user types (CLI, query string) into the value, for types with no plain
    text form (a list of scales); `check` replaces the range check for such values. `flag` is the CLI
    flag when it is not `--the-name`; `cli`/`api` say which front ends offer it."""

    help: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    parse: Callable[[str], Any] | None = None
    check: Callable[[str, Any], Any] | None = None
    flag: str | None = None
    cli: bool = True
    api: bool = False
    argument: bool = False  # a CLI argument (positional), not an option
    env: str | None = None  # an environment variable the CLI reads when the flag is not given


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    **spec: Any,
) -> Any:
    """A dataclass field that declares an option (see `Spec` for the keywords)."""
    meta = {_SPEC: Spec(help=help, **spec)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Declared:
    """One declared option as the front ends see it: its value type, whether None is allowed, default."""

    name: str
    kind: type  # bool, int, float, str, tuple or list
    optional: bool
    default: Any  # MISSING when required
    spec: Spec

    @property
    def required(self) -> bool:
        return self.default is MISSING


def _kind(hint: Any) -> tuple[type, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        kind, _ = _kind(rest[0])
        return kind, len(rest) < len(args)
    origin = typing.get_origin(hint)
    return (origin or hint), False


@functools.cache
def declared(cls: type) -> tuple[Declared, ...]:
    """The declared options of a dataclass, in field order (fields without `option(...)` are skipped)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_SPEC)
        if spec is None:
            continue
        kind, optional = _kind(hints[f.name])
        default = f.default if f.default is not MISSING else MISSING
        if f.default_factory is not MISSING:
            default = f.default_factory()
        out.append(Declared(f.name, kind, optional, default, spec))
    return tuple(out)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_number(name: str, value: Any, lo: float, hi: float) -> float:
    """A finite real number (not a bool) in [lo, hi], as a float; else OptionError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionError(name, f"must be a number in [{lo:g}, {hi:g}], got {_show(value)}")
    v = float(value)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise OptionError(name, f"must be a finite number in [{lo:g}, {hi:g}], got {_show(value)}")
    return v


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """A whole number (not a bool) in [lo, hi]; else OptionError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise OptionError(name, f"must be a whole number in [{lo}, {hi}], got {_show(value)}")
    v = int(value)
    if not lo <= v <= hi:
        raise OptionError(name, f"must be a whole number in [{lo}, {hi}], got {_show(value)}")
    return v


def check_value(d: Declared, value: Any) -> Any:
    """The value, checked against its declaration and normalized (ints as int, numbers as float)."""
    if value is None and d.optional:
        return None
    spec = d.spec
    if spec.check is not None:
        return spec.check(d.name, value)
    if d.kind is bool:
        if not isinstance(value, bool):
            raise OptionError(d.name, f"must be true or false, got {_show(value)}")
        return value
    if spec.choices is not None:
        if not isinstance(value, str) or value not in spec.choices:
            raise OptionError(d.name, f"must be one of {', '.join(spec.choices)}, got {_show(value)}")
        return value
    if d.kind is int:
        lo, hi = spec.range or (-(2**63), 2**63 - 1)
        return check_int(d.name, value, int(lo), int(hi))
    if d.kind is float:
        lo, hi = spec.range or (-math.inf, math.inf)
        return check_number(d.name, value, lo, hi)
    if d.kind is str and not isinstance(value, str):
        raise OptionError(d.name, f"must be text, got {_show(value)}")
    return value


def check_fields(obj: Any) -> None:
    """Check and normalize every declared field of a (frozen or not) dataclass instance in place."""
    for d in declared(type(obj)):
        object.__setattr__(obj, d.name, check_value(d, getattr(obj, d.name)))


def from_text(d: Declared, text: str) -> Any:
    """A value from the text a user typed (query string, form field, CLI); the range is checked later."""
    v = text.strip()
    if d.spec.parse is not None:
        try:
            return d.spec.parse(v)
        except OptionError as e:
            if e.option != "value":
                raise
            raise OptionError(d.name, str(e).removeprefix("value ")) from None
    if d.kind is bool:
        if v.lower() in _TRUE:
            return True
        if v.lower() in _FALSE:
            return False
        raise OptionError(d.name, f"must be true or false, got {_show(text[:40])}")
    if d.kind in (int, float):
        try:
            return d.kind(v)
        except ValueError:
            what = "a whole number" if d.kind is int else "a number"
            raise OptionError(d.name, f"must be {what}, got {_show(text[:40])}") from None
    return v


def text_of(value: Any) -> str:
    """The text form of a value, as a user would type it (`(35, 95)` -> '35,95')."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def numbers_from_text(count: int | tuple[int, int], kind: type = float) -> Callable[[str], tuple]:
    """A `parse` for comma-separated numbers: exactly `count`, or between count[0] and count[1]."""
    lo, hi = (count, count) if isinstance(count, int) else count

    def parse(text: str) -> tuple:
        parts = [p.strip() for p in text.split(",")]
        if not lo <= len(parts) <= hi:
            n = str(lo) if lo == hi else f"{lo} to {hi}"
            raise OptionError("value", f"takes {n} numbers separated by commas, got {text[:40]!r}")
        try:
            return tuple(kind(p) for p in parts)
        except ValueError:
            raise OptionError("value", f"takes numbers separated by commas, got {text[:40]!r}") from None

    return parse


def check_pair(lo: int, hi: int) -> Callable[[str, Any], tuple[int, int]]:
    """A `check` for a (low, high) pair of whole numbers within [lo, hi], low <= high."""

    def check(name: str, value: Any) -> tuple[int, int]:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
            raise OptionError(name, f"must be two whole numbers (low, high), got {_show(value)}")
        a, b = (check_int(name, v, lo, hi) for v in value)
        if a > b:
            raise OptionError(name, f"must be low <= high, got {a},{b}")
        return (a, b)

    return check
