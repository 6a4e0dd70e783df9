"""Scan results: one dataclass per image (schema scan@2), and its lossless path fields.

File names are bytes on Linux and need not be UTF-8; Python carries undecodable bytes in a `str` as
lone surrogates (`os.fsdecode`'s surrogateescape), which no UTF-8 writer accepts. Every writer here
therefore puts `path` in a lossless, documented form: the name as UTF-8 text where it is valid UTF-8;
otherwise `path` shows each undecodable byte as `\\xNN` and `path_b64` carries the exact bytes
(base64), from which `path_from_record` gives the original name back.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.geometry import Detection

#: The version of the JSON record (README, "Result records"): v2 added `schema`, `exposure`,
#: `thresholds`, and for video frames `frame` and `time_s`; appearance and video records (detector.video).
SCAN_SCHEMA = "logo-detector/scan@2"


@dataclass
class ScanResult:
    path: str
    width: int = 0
    height: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    has_logo: bool = False
    labels: list[str] = field(default_factory=list)  # the logo classes judged present
    boxes: list[Detection] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)
    sha256: str = ""
    heatmaps: dict[str, np.ndarray] | None = None  # per label, image-sized float maps in [0, 1]; not serialized
    notes: list[str] = field(default_factory=list)  # what the work budget changed about this scan
    # Written only when set (additive fields of schema v2):
    exposure: list[dict[str, Any]] | None = None  # one entry per box, same order (detector.report.exposure)
    thresholds: dict[str, float] | None = None  # the image threshold of each class the verdicts used
    frame: int | None = None  # a video frame: its index in the video (path is the video's)
    time_s: float | None = None  # ... and its time

    def as_dict(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"schema": SCAN_SCHEMA, **path_fields(self.path)}
        if self.frame is not None:
            rec["frame"] = self.frame
            rec["time_s"] = round(float(self.time_s or 0.0), 3)
        return (
            rec
            | {
                "width": self.width,
                "height": self.height,
                "scores": {k: round(v, 4) for k, v in self.scores.items()},
                "has_logo": self.has_logo,
                "labels": self.labels,
                "boxes": [b.as_dict() for b in self.boxes],
                "errors": self.errors,
                "notes": self.notes,
                "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
                "model": self.model,
                "sha256": self.sha256,
            }
            | self._extra()
        )

    def _extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.exposure is not None:
            extra["exposure"] = self.exposure
        if self.thresholds is not None:
            extra["thresholds"] = {k: round(v, 6) for k, v in self.thresholds.items()}
        return extra


def path_bytes(path: str) -> bytes:
    """The file name's bytes as the file system has them (surrogateescape undone)."""
    try:
        return os.fsencode(path)
    except UnicodeEncodeError:  # surrogates that did not come from the file system
        return path.encode("utf-8", "surrogatepass")


def path_fields(path: str) -> dict[str, str]:
    """{"path": text} for a UTF-8 name; {"path": text with \\xNN escapes, "path_b64": exact bytes} otherwise."""
    raw = path_bytes(path)
    try:
        return {"path": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"path": raw.decode("utf-8", "backslashreplace"), "path_b64": base64.b64encode(raw).decode("ascii")}


def display_path(path: str) -> str:
    """One printable line for a terminal or a log: undecodable bytes and control characters escaped."""
    text = path_fields(path)["path"]
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def path_from_record(rec: dict[str, Any]) -> str:
    """The original file name (as a Path would hold it) from a JSON record written by these writers."""
    if rec.get("path_b64"):
        return os.fsdecode(base64.b64decode(rec["path_b64"], validate=True))
    return str(rec["path"])
