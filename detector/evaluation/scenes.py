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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from detector.backends.base import Backend
from detector.data.boxes import BoxDataset, ImageRecord
from detector.data.boxes import to_coco as coco_annotations
from detector.data.folders import split_of
from detector.errors import DatasetError, ImageLoadError
from detector.evaluation.metrics import choose_threshold
from detector.images import load_image
from detector.model.store import ModelMeta
from detector.pipeline.calibration import BoxCalibration, fit_box_calibration
from detector.pipeline.scan import ScanOptions, TileEvidence, assemble_result, tile_evidence
from detector.results.record import ScanResult

CAM_THRESHOLD_CANDIDATES = (0.3, 0.4, 0.5, 0.6, 0.7)
JOIN_CANDIDATES = (2.0, 4.0)


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
    cat = {c["name"]: c["id"] for c in gt["categories"]}
    dets = [
        {"image_id": i, "category_id": cat[d.label], "score": d.score, "bbox": [d.x1, d.y1, d.x2 - d.x1, d.y2 - d.y1]}
        for i, res in enumerate(results, start=1)
        for d in res.boxes
        if d.label in cat  # judged for `classes` only
    ]
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


def _fit_and_judge(r: SceneReport, meta: ModelMeta) -> tuple[BoxCalibration, float]:
    """The box calibration fitted on a report's boxes, and the AP@0.5 of the boxes it gives."""
    tile = meta.input_size
    truth = [[(b.label, b.x1, b.y1, b.x2, b.y2) for b in rec.boxes] for rec in r.records]
    sizes = [(res.width, res.height) for res in r.results]
    fit = fit_box_calibration([res.boxes for res in r.results], truth, sizes, tile)
    final = [replace(res, boxes=fit.apply(res.boxes, tile, res.width, res.height)) for res in r.results]
    return fit, box_ap(final, r.records, meta.positive_classes)["ap50"] or 0.0


def calibrate(
    backend: Backend,
    ds: BoxDataset,
    target_precision: float,
    split: str = "val",
    opts: ScanOptions | None = None,
    candidates: tuple[float, ...] = CAM_THRESHOLD_CANDIDATES,
    joins: tuple[float, ...] = JOIN_CANDIDATES,
    fallback: BoxDataset | None = None,
) -> dict:
    """Choose image thresholds (target precision), and the CAM threshold, fragment joining and box
    calibration (best AP@0.5 after calibration) on `split` scenes.

    A few dozen real photos often hold too few boxes to fit the box calibration; `fallback` (e.g.
    synthetic validation scenes of the same brands, all of them used) then supplies the box stage's
    choices, while the image thresholds stay those of the real photos."""
    opts = opts or ScanOptions()
    records = scene_split(ds, split)
    if not records:
        raise DatasetError(f"{ds.root}: no scenes in the '{split}' split to calibrate on")
    evidence = collect_evidence(backend, ds, records, opts, progress="calibrate")
    meta = backend.meta
    neg = meta.classes.index(meta.negative_class)
    image_thresholds, chosen = {}, {}
    for ci, c in enumerate(meta.classes):
        if ci == neg:
            continue
        y = np.array([any(b.label == c for b in r.boxes) for r, _ in evidence])
        s = np.array([float(ev.probs[:, ci].max()) if len(ev.probs) else 0.0 for _, ev in evidence])
        ch = choose_threshold(y, s, target_precision, among="f1")
        image_thresholds[c] = float(ch.threshold)
        chosen[c] = {
            "threshold": float(ch.threshold),
            "precision": round(ch.precision, 4),
            "recall": round(ch.recall, 4),
            "reached": ch.reached,
        }
    meta.image_thresholds = image_thresholds
    meta.box_calibration = None  # the candidates are judged on raw boxes, each with its own fit
    table, raw, fits = {}, {}, {}
    for j in joins:
        for t in candidates:
            r = evaluate_scenes(backend, ds, split, replace(opts, cam_threshold=t, join_cells=j), evidence)
            raw[(j, t)] = r.report["box"]["ap50"] or 0.0
            fits[(j, t)], table[(j, t)] = _fit_and_judge(r, meta)
    best_j, best_t = max(table, key=lambda jt: (table[jt], -abs(jt[1] - 0.5)))
    best = fits[(best_j, best_t)]
    source = "calibration scenes"
    if not (best.correction or best.scorer) and fallback is not None:
        box_stage = _box_stage(backend, fallback, opts, candidates, joins)
        if box_stage is not None:
            (best_j, best_t), best, table = box_stage
            source = f"fallback scenes ({fallback.root}): too few boxes in the calibration scenes"
    meta.cam_threshold, meta.join_cells = best_t, best_j
    calibration = best.as_dict() if (best.correction or best.scorer) else None  # None: too few boxes to fit
    meta.box_calibration = calibration
    return {
        "box_calibration_source": source if calibration else None,
        "split": split,
        "images": len(evidence),
        "target_precision": target_precision,
        "image_thresholds": chosen,
        "cam_threshold": best_t,
        "join_cells": best_j,
        "box_calibration": calibration,
        "ap50_by_join_and_cam_threshold": {f"join {j:g}, threshold {t:g}": v for (j, t), v in table.items()},
        "ap50_uncalibrated": {f"join {j:g}, threshold {t:g}": v for (j, t), v in raw.items()},
    }


def _box_stage(
    backend: Backend, ds: BoxDataset, opts: ScanOptions, candidates: tuple[float, ...], joins: tuple[float, ...]
) -> tuple[tuple[float, float], BoxCalibration, dict] | None:
    """The box stage's choices fitted on all of `ds`: ((join, CAM threshold), fit, AP table), or None
    when these scenes too are too few to fit a calibration."""
    evidence = collect_evidence(backend, ds, list(ds.images), opts, progress="calibrate (fallback)")
    table, fits = {}, {}
    for j in joins:
        for t in candidates:
            r = evaluate_scenes(backend, ds, "all", replace(opts, cam_threshold=t, join_cells=j), evidence)
            fits[(j, t)], table[(j, t)] = _fit_and_judge(r, backend.meta)
    best = max(table, key=lambda jt: (table[jt], -abs(jt[1] - 0.5)))
    if not (fits[best].correction or fits[best].scorer):
        return None
    return best, fits[best], table
