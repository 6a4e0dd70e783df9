"""Judge and calibrate the scanner on box-annotated scenes: image verdicts and box AP (pycocotools).

Calibration (`detect calibrate`) picks, on validation scenes, the image-level threshold of each logo
class (the best tile's probability: the maximum over many tiles inflates false positives, so it needs
its own threshold; the best-F1 one among those reaching the target precision, see `choose_threshold`),
and the CAM threshold and fragment-joining distance that give the best box AP@0.5 once the boxes'
size and centre are corrected and their scores refitted on the same scenes (detector.pipeline.calibration), and
stores them all in model.json. The model runs once per image; only the cheap box stage is repeated per candidate.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.backends.base import Backend
from detector.data.boxes import BoxDataset, ImageRecord
from detector.data.boxes import to_coco as coco_annotations
from detector.data.folders import split_of
from detector.errors import DatasetError, ImageLoadError
from detector.images import load_image
from detector.pipeline.evidence import TileEvidence, tile_evidence
from detector.pipeline.options import ScanOptions
from detector.pipeline.scan import assemble_result
from detector.results.coco import coco_document
from detector.results.record import ScanResult


def scene_split(ds: BoxDataset, split: str) -> list[ImageRecord]:
    if split == "all":
        return list(ds.images)
    return [r for r in ds.images if split_of(Path(r.file).name) == split]


def collect_evidence(
    backend: Backend,
    ds: BoxDataset,
    records: list[ImageRecord],
    opts: ScanOptions,
    progress: str | None = None,
    keep_features: bool = False,
) -> list[tuple[ImageRecord, TileEvidence]]:
    out = []
    it: Iterable[ImageRecord] = records
    if progress:
        from tqdm import tqdm

        it = tqdm(records, desc=progress, unit="img", disable=None, leave=False)
    for rec in it:
        try:
            px = load_image(ds.image_path(rec)).pixels
        except ImageLoadError:
            continue
        ev = tile_evidence(backend, px, opts)
        if not keep_features:  # feature maps are large; only Grad-CAM++ needs them
            ev.features = None
        out.append((rec, ev))
    return out


def image_level(results: list[ScanResult], records: list[ImageRecord], classes: list[str]) -> dict:
    """Per logo class: precision/recall of the image verdict, and AP of the image score."""
    from sklearn.metrics import average_precision_score

    out = {}
    for c in classes:
        y = np.array([any(b.label == c for b in r.boxes) for r in records])
        pred = np.array([c in res.labels for res in results])
        score = np.array([res.scores.get(c, 0.0) for res in results])
        tp, fp, fn = int((y & pred).sum()), int((~y & pred).sum()), int((y & ~pred).sum())
        p = tp / (tp + fp) if tp + fp else None
        r = tp / (tp + fn) if tp + fn else None
        out[c] = {
            "precision": None if p is None else round(p, 4),
            "recall": None if r is None else round(r, 4),
            "average_precision": round(float(average_precision_score(y, score)), 4) if y.any() and (~y).any() else None,
            "images_with_logo": int(y.sum()),
            "images": len(records),
        }
    return out


def box_ap(results: list[ScanResult], records: list[ImageRecord], classes: list[str]) -> dict:
    """COCO box AP@0.5 and AP@[.5:.95] per class and overall (pycocotools)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    # Ground truth in the same COCO form the box datasets are written in (image ids 1..n, in order);
    # boxes of labels the model does not know are left out, detections are the scan results.
    known = [ImageRecord(r.file, r.width, r.height, [b for b in r.boxes if b.label in classes]) for r in records]
    gt = coco_annotations(known, classes)
    size = [{"file_name": r.file, "width": r.width, "height": r.height} for r in records]
    dets = coco_document(list(zip(size, [res.boxes for res in results], strict=True)), classes, digits=None)
    dets = dets["annotations"]  # judged for `classes` only
    cat = {c["name"]: c["id"] for c in gt["categories"]}
    if not gt["annotations"]:
        return {"ap50": None, "ap": None, "per_class_ap50": {}}
    if not dets:
        return {"ap50": 0.0, "ap": 0.0, "per_class_ap50": {c: 0.0 for c in classes}, "detections": 0}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    per_class = {}
    for c, k in cat.items():
        p = precision[0, :, k - 1, 0, -1]
        per_class[c] = round(float(p[p > -1].mean()), 4) if (p > -1).any() else None
    by_size = {}  # COCO's area ranges: small logos are where a CAM's coarse cells hurt most
    for a, name in ((1, "small (< 32x32 px)"), (2, "medium"), (3, "large (> 96x96 px)")):
        p = precision[0, :, :, a, -1]
        by_size[name] = round(float(p[p > -1].mean()), 4) if (p > -1).any() else None
    return {
        "ap50": round(float(ev.stats[1]), 4),
        "ap": round(float(ev.stats[0]), 4),
        "per_class_ap50": per_class,
        "ap50_by_size": by_size,
        "detections": len(dets),
    }


@dataclass
class SceneReport:
    report: dict
    results: list[ScanResult]
    records: list[ImageRecord]


def evaluate_scenes(
    backend: Backend, ds: BoxDataset, split: str = "all", opts: ScanOptions | None = None, evidence: list | None = None
) -> SceneReport:
    opts = opts or ScanOptions()
    records = scene_split(ds, split)
    if not records:
        raise DatasetError(f"{ds.root}: no scenes in the '{split}' split")
    evidence = evidence if evidence is not None else collect_evidence(backend, ds, records, opts, progress="scan")
    recs = [r for r, _ in evidence]
    results = [assemble_result(ev, backend, opts, r.file) for r, ev in evidence]
    classes = backend.meta.positive_classes
    model_ms = [ev.model_ms + ev.tiling_ms for _, ev in evidence]
    report = {
        "data": str(ds.root),
        "split": split,
        "images": len(recs),
        "boxes": sum(len(r.boxes) for r in recs),
        "image_level": image_level(results, recs, classes),
        "box": box_ap(results, recs, classes),
        "cam_threshold": opts.cam_threshold if opts.cam_threshold is not None else backend.meta.cam_threshold,
        "median_ms_per_image": round(float(np.median(model_ms)), 1) if model_ms else None,
    }
    return SceneReport(report, results, recs)


def write_scene_report(report: dict, model: Path, data_dir: Path, split: str, report_dir: Path | None = None) -> Path:
    """Save a scene report as JSON: in `report_dir`, else the model's evaluation/ folder; its path."""
    import json

    dest = report_dir or (model if model.is_dir() else model.parent) / "evaluation"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"scenes-{data_dir.name}-{split}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
