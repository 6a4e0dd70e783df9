"""The one COCO writer: ground truth (box datasets) and detections (scan results) in one form.

An annotation with a `score` is a detection (pycocotools' `loadRes` form), one without is ground
truth; both have `id`, `area` and `iscrowd`, so one document type serves the dataset files, the scan
output and the evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def coco_document(
    images: Sequence[tuple[dict[str, Any], Sequence[Any]]], labels: Sequence[str], digits: int | None = 2
) -> dict[str, Any]:
    """COCO from (image entry, boxes) pairs: the entry holds file_name, width, height (and any extra
    keys, e.g. path_b64); a box has label, x1..y2 and, for detections, score. Boxes of labels not in
    `labels` are left out. `digits`: rounding of coordinates (None: exact, for evaluation)."""

    def r(v: float) -> float:
        return float(v) if digits is None else round(float(v), digits)

    cat = {name: i + 1 for i, name in enumerate(labels)}
    out_images, anns = [], []
    for i, (entry, boxes) in enumerate(images, start=1):
        out_images.append({"id": i, **entry})
        for b in boxes:
            if b.label not in cat:
                continue
            w, h = b.x2 - b.x1, b.y2 - b.y1
            ann = {"id": len(anns) + 1, "image_id": i, "category_id": cat[b.label]}
            ann |= {"bbox": [r(b.x1), r(b.y1), r(w), r(h)], "area": r(w * h), "iscrowd": 0}
            if getattr(b, "score", None) is not None:
                ann["score"] = float(b.score) if digits is None else round(float(b.score), 4)
            anns.append(ann)
    return {
        "info": {"description": "logo-detector"},
        "images": out_images,
        "annotations": anns,
        "categories": [{"id": i, "name": n, "supercategory": "logo"} for n, i in cat.items()],
    }
