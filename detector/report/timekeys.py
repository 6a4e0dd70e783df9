"""What "over time" means for a record: its video time, a field, a part of its path, or its EXIF date.

`--by FIELD` of `detect report`:
- a record field, dotted for nesting (`time_s`, `meta.date`);
- `path:REGEX`: the first group (else the whole match) of a regex searched in the path, e.g.
  `path:(\\d{4}-\\d{2}-\\d{2})` for folders named by date;
- `exif:date`: the day of the photo's EXIF DateTimeOriginal (or DateTime), read from the file's
  header with Pillow (no pixels are decoded); photos without one have no key.
Without `--by`, video frames are keyed by their `time_s` and photos have no key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from detector.errors import DetectorError

KeyFunction = Callable[[dict[str, Any], str], Any]


def _video_time(rec: dict[str, Any], path: str) -> Any:
    t = rec.get("time_s")
    return round(float(t), 3) if t is not None and rec.get("frame") is not None else None


def time_key_function(by: str | None) -> KeyFunction:
    """The key function of a `--by` value; a malformed value is a one-line DetectorError.

    Example:
        >>> time_key_function("path:(\\\\d{4})")({"path": "x/2021/a.jpg"}, "x/2021/a.jpg")
        '2021'
    """
    if not by:
        return _video_time
    if by.startswith("path:"):
        try:
            rx = re.compile(by[5:])
        except re.error as e:
            raise DetectorError(f"by {by}: not a regular expression ({e})") from None

        def from_path(rec: dict[str, Any], path: str) -> Any:
            m = rx.search(path)
            if m is None:
                return None
            return m.group(1) if m.groups() else m.group(0)

        return from_path
    if by == "exif:date":
        return lambda rec, path: exif_date(path)
    if by.startswith("exif:"):
        raise DetectorError(f"by {by}: only exif:date is known")
    parts = by.split(".")

    def from_field(rec: dict[str, Any], path: str) -> Any:
        v: Any = rec
        for p in parts:
            if not isinstance(v, dict) or p not in v:
                return None
            v = v[p]
        return v if isinstance(v, (str, int, float)) and not isinstance(v, bool) else None

    return from_field


def exif_date(path: str) -> str | None:
    """YYYY-MM-DD of a photo's EXIF DateTimeOriginal (DateTime as a fallback), or None."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            exif = img.getexif()
            raw = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, DateTime
    except Exception:  # any unreadable file simply has no date
        return None
    m = re.match(r"(\d{4})[:-](\d{2})[:-](\d{2})", str(raw or ""))
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else None
