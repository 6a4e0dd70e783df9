"""Scan results: one dataclass per image, and writers (JSON, JSONL, CSV, COCO, annotated images).

File names are bytes on Linux and need not be UTF-8; Python carries undecodable bytes in a `str` as
lone surrogates (`os.fsdecode`'s surrogateescape), which no UTF-8 writer accepts. Every writer here
therefore puts `path` in a lossless, documented form: the name as UTF-8 text where it is valid UTF-8;
otherwise `path` shows each undecodable byte as `\\xNN` and `path_b64` carries the exact bytes
(base64), from which `path_from_record` gives the original name back.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.pipeline.boxes import Detection

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


def to_jsonl_line(r: ScanResult) -> str:
    return json.dumps(r.as_dict(), ensure_ascii=False) + "\n"


def to_csv(results: list[ScanResult]) -> str:
    """One row per box; an image without boxes (or with an error) still gets one row."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "has_logo", "label", "score", "x1", "y1", "x2", "y2", "scale", "error", "path_b64"])
    for r in results:
        err = "; ".join(r.errors)
        name = path_fields(r.path)
        path, b64 = name["path"], name.get("path_b64", "")
        if not r.boxes:
            w.writerow([path, r.has_logo, "", "", "", "", "", "", "", err, b64])
        for b in r.boxes:
            d = b.as_dict()
            w.writerow(
                [path, r.has_logo, d["label"], d["score"], d["x1"], d["y1"], d["x2"], d["y2"], d["scale"], err, b64]
            )
    return buf.getvalue()


def to_coco(results: list[ScanResult], labels: list[str]) -> dict[str, Any]:
    """COCO detection results with their image list (the form pycocotools' loadRes takes, plus images)."""
    cat = {name: i + 1 for i, name in enumerate(labels)}
    images, anns = [], []
    for i, r in enumerate(results, start=1):
        name = path_fields(r.path)
        entry: dict[str, Any] = {"id": i, "file_name": name["path"], "width": r.width, "height": r.height}
        if "path_b64" in name:
            entry["path_b64"] = name["path_b64"]
        images.append(entry)
        for b in r.boxes:
            anns.append(
                {
                    "image_id": i,
                    "category_id": cat[b.label],
                    "score": round(b.score, 4),
                    "bbox": [round(b.x1, 1), round(b.y1, 1), round(b.x2 - b.x1, 1), round(b.y2 - b.y1, 1)],
                }
            )
    return {"images": images, "annotations": anns, "categories": [{"id": i, "name": n} for n, i in cat.items()]}


_COLORS = [(255, 64, 32), (32, 200, 255), (255, 210, 0), (160, 90, 255), (0, 220, 120)]


def annotate(pixels: np.ndarray, result: ScanResult, labels: list[str]) -> np.ndarray:
    """A copy of the image with the boxes and labels drawn (RGB in, RGB out)."""
    img = pixels.copy()
    t = max(2, round(min(img.shape[:2]) / 250))
    for b in result.boxes:
        color = _COLORS[labels.index(b.label) % len(_COLORS)] if b.label in labels else _COLORS[0]
        p1, p2 = (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2))
        cv2.rectangle(img, p1, p2, color, t, cv2.LINE_AA)
        text = f"{b.label} {b.score:.2f}"
        scale = max(0.45, min(img.shape[:2]) / 900)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = p1[1] - 4 if p1[1] - th - 6 > 0 else p2[1] + th + 4
        cv2.rectangle(img, (p1[0], y - th - 3), (p1[0] + tw + 4, y + base - 1), color, -1)
        cv2.putText(img, text, (p1[0] + 2, y - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def heatmap_overlay(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with a heatmap (values in [0, 1], any size) blended on top, JET colours."""
    h, w = pixels.shape[:2]
    hm = cv2.resize(np.clip(heat, 0, 1).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colored = cv2.cvtColor(cv2.applyColorMap((hm * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    weight = (alpha * np.clip(hm * 1.5, 0, 1))[..., None]
    return (pixels * (1 - weight) + colored * weight).astype(np.uint8)


def write_rgb(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext or ".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), params)
    if ok:
        path.write_bytes(buf.tobytes())  # handles unicode paths, unlike cv2.imwrite
