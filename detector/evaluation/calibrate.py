"""`detect calibrate`: choose a model's image thresholds, CAM threshold, fragment joining and box
calibration on whole scenes, and return them as one `Calibration` value.

The choices are measured, not guessed: every (join, CAM threshold) candidate is scored by the box AP@0.5
its boxes reach after their own fitted box calibration. `calibrate` changes nothing it is given;
`save_calibration` is the one place the choices are written (model.json), and `Calibration.applied`
gives a meta for scanning with them in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from detector.backends.base import Backend
from detector.data.boxes import BoxDataset
from detector.errors import DatasetError
from detector.evaluation.metrics import choose_threshold
from detector.evaluation.scenes import SceneReport, box_ap, collect_evidence, evaluate_scenes, scene_split
from detector.model.meta import ModelMeta
from detector.model.store import read_meta, update_meta
from detector.pipeline.calibration import BoxCalibration, box_hits, fit_box_calibration
from detector.pipeline.options import ScanOptions

CAM_THRESHOLD_CANDIDATES = (0.3, 0.4, 0.5, 0.6, 0.7)
JOIN_CANDIDATES = (2.0, 4.0)


@dataclass(frozen=True)
class Calibration:
    """What `calibrate` chose, and the report of what it tried (stored as validation.calibration)."""

    image_thresholds: dict[str, float]
    cam_threshold: float
    join_cells: float
    box_calibration: dict[str, Any] | None  # None: too few boxes to fit one
    report: dict[str, Any]

    def applied(self, meta: ModelMeta) -> ModelMeta:
        """`meta` with these choices: what a scanner uses once the calibration is saved."""
        return replace(
            meta,
            image_thresholds=dict(self.image_thresholds),
            cam_threshold=self.cam_threshold,
            join_cells=self.join_cells,
            box_calibration=self.box_calibration,
        )


def save_calibration(model_dir: str | Path, cal: Calibration) -> ModelMeta:
    """Write the choices and the report into the model directory's model.json; the new meta."""
    validation = {**read_meta(model_dir).validation, "calibration": cal.report}
    return update_meta(
        model_dir,
        image_thresholds=cal.image_thresholds,
        cam_threshold=cal.cam_threshold,
        join_cells=cal.join_cells,
        box_calibration=cal.box_calibration,
        validation=validation,
    )


@contextlib.contextmanager
def _scanning_with(backend: Backend, meta: ModelMeta) -> Iterator[None]:
    """The backend scans with `meta` inside the block, and with its own meta again after it."""
    saved = backend.meta
    backend.meta = meta
    try:
        yield
    finally:
        backend.meta = saved


def _fit_and_judge(r: SceneReport, meta: ModelMeta) -> tuple[BoxCalibration, float, dict[str, dict[str, int]]]:
    """The box calibration fitted on a report's boxes, the AP@0.5 of the boxes it gives, and per label
    how many of those boxes are right and wrong (the scorer needs enough of each)."""
    tile = meta.input_size
    truth = [rec.boxes for rec in r.records]
    sizes = [(res.width, res.height) for res in r.results]
    fit = fit_box_calibration([res.boxes for res in r.results], truth, sizes, tile)
    final = [replace(res, boxes=fit.apply(res.boxes, tile, res.width, res.height)) for res in r.results]
    counts: dict[str, dict[str, int]] = {}
    for res, gts in zip(final, truth, strict=True):
        for d, hit in zip(res.boxes, box_hits(res.boxes, gts), strict=True):
            c = counts.setdefault(d.label, {"right": 0, "wrong": 0})
            c["right" if hit else "wrong"] += 1
    return fit, box_ap(final, r.records, meta.positive_classes)["ap50"] or 0.0, counts


def _image_thresholds(meta: ModelMeta, evidence: list, target_precision: float) -> dict[str, dict[str, Any]]:
    """Per logo class: the image threshold (best tile probability) reaching the target precision."""
    neg = meta.classes.index(meta.negative_class)
    chosen = {}
    for ci, c in enumerate(meta.classes):
        if ci == neg:
            continue
        y = np.array([any(b.label == c for b in r.boxes) for r, _ in evidence])
        s = np.array([float(ev.probs[:, ci].max()) if len(ev.probs) else 0.0 for _, ev in evidence])
        ch = choose_threshold(y, s, target_precision, among="f1")
        chosen[c] = {
            "threshold": float(ch.threshold),
            "precision": round(ch.precision, 4),
            "recall": round(ch.recall, 4),
            "reached": ch.reached,
        }
    return chosen


@dataclass
class _BoxSearch:
    """Every (join, CAM threshold) candidate on one set of scenes: raw AP, fit, AP after the fit."""

    raw: dict[tuple[float, float], float]
    fits: dict[tuple[float, float], BoxCalibration]
    table: dict[tuple[float, float], float]
    boxes: dict[tuple[float, float], dict[str, dict[str, int]]]

    @property
    def best(self) -> tuple[float, float]:
        return max(self.table, key=lambda jt: (self.table[jt], -abs(jt[1] - 0.5)))

    @property
    def fitted(self) -> bool:
        fit = self.fits[self.best]
        return bool(fit.correction or fit.scorer)


def _search_boxes(
    backend: Backend, ds: BoxDataset, split: str, opts: ScanOptions, evidence: list, grid: tuple[tuple, tuple]
) -> _BoxSearch:
    candidates, joins = grid
    search = _BoxSearch({}, {}, {}, {})
    for j in joins:
        for t in candidates:
            r = evaluate_scenes(backend, ds, split, replace(opts, cam_threshold=t, join_cells=j), evidence)
            search.raw[(j, t)] = r.report["box"]["ap50"] or 0.0
            search.fits[(j, t)], search.table[(j, t)], search.boxes[(j, t)] = _fit_and_judge(r, backend.meta)
    return search


def calibrate(
    backend: Backend,
    ds: BoxDataset,
    target_precision: float,
    split: str = "val",
    opts: ScanOptions | None = None,
    candidates: tuple[float, ...] = CAM_THRESHOLD_CANDIDATES,
    joins: tuple[float, ...] = JOIN_CANDIDATES,
    fallback: BoxDataset | None = None,
) -> Calibration:
    """Choose image thresholds (target precision), and the CAM threshold, fragment joining and box
    calibration (best AP@0.5 after calibration) on `split` scenes.

    A few dozen real photos often hold too few boxes to fit the box calibration; `fallback` (e.g.
    synthetic validation scenes of the same brands, all of them used) then supplies the box stage's
    choices, while the image thresholds stay those of the real photos.

    Example:
        >>> cal = calibrate(load_model("m"), read_box_dataset("val-scenes"), 0.9)  # doctest: +SKIP
        >>> save_calibration("m", cal)  # doctest: +SKIP
    """
    opts = opts or ScanOptions()
    records = scene_split(ds, split)
    if not records:
        raise DatasetError(f"{ds.root}: no scenes in the '{split}' split to calibrate on")
    evidence = collect_evidence(backend, ds, records, opts, progress="calibrate")
    chosen = _image_thresholds(backend.meta, evidence, target_precision)
    thresholds = {c: v["threshold"] for c, v in chosen.items()}
    # the candidates are judged on raw boxes, each with its own fit
    with _scanning_with(backend, replace(backend.meta, image_thresholds=thresholds, box_calibration=None)):
        search = _search_boxes(backend, ds, split, opts, evidence, (candidates, joins))
        source, box_search = "calibration scenes", search
        if not search.fitted and fallback is not None:
            every = collect_evidence(backend, fallback, list(fallback.images), opts, progress="calibrate (fallback)")
            other = _search_boxes(backend, fallback, "all", opts, every, (candidates, joins))
            if other.fitted:
                box_search = other
                source = f"fallback scenes ({fallback.root}): too few boxes in the calibration scenes"
    best_j, best_t = box_search.best
    calibration = box_search.fits[box_search.best].as_dict() if box_search.fitted else None
    report = {
        "box_calibration_source": source if calibration else None,
        "split": split,
        "images": len(evidence),
        "target_precision": target_precision,
        "image_thresholds": chosen,
        "cam_threshold": best_t,
        "join_cells": best_j,
        "box_calibration": calibration,
        "calibration_boxes": box_search.boxes[box_search.best],  # a scorer needs MIN_CLASS_BOXES of each
        "ap50_by_join_and_cam_threshold": {f"join {j:g}, threshold {t:g}": v for (j, t), v in box_search.table.items()},
        "ap50_uncalibrated": {f"join {j:g}, threshold {t:g}": v for (j, t), v in search.raw.items()},
    }
    return Calibration(thresholds, best_t, best_j, calibration, report)
