"""Result files: JSONL lines, CSV rows (one per box), COCO detections."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from detector.results.coco import coco_document
from detector.results.record import ScanResult, path_fields


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
    entries = []
    for r in results:
        name = path_fields(r.path)
        entry: dict[str, Any] = {"file_name": name["path"], "width": r.width, "height": r.height}
        if "path_b64" in name:
            entry["path_b64"] = name["path_b64"]
        entries.append((entry, r.boxes))
    return coco_document(entries, labels, digits=1)
