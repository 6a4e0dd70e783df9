"""The scan of one image: image -> evidence (scores + CAMs) -> verdicts -> boxes -> result.

Every stage is a plain function of plain values; the backend is the only model-specific piece and it
is passed in. `tile_evidence` (detector.pipeline.evidence) is the only stage that runs the model; the
rest (`verdicts`, `find_boxes`, `heatmaps`) only read its evidence, so an evaluation can scan once and
judge many settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from detector.backends.base import Backend
from detector.geometry import Detection, containment
from detector.model.meta import CAM_GEOMETRY, ModelMeta
from detector.pipeline.calibration import BoxCalibration
from detector.pipeline.cam import CAM_METHODS
from detector.pipeline.evidence import TileEvidence, tile_evidence
from detector.pipeline.merge import merge_levels
from detector.pipeline.options import ScanOptions
from detector.pipeline.stitch import LevelCanvas, fits_level
from detector.pipeline.tiling import Tile
from detector.results.record import ScanResult

__all__ = ["assemble_result", "find_boxes", "heatmaps", "scan_pixels", "verdicts"]

#: Heatmaps are stitched at most this many pixels on the long side (boxes are scaled back exactly).
CANVAS_SIDE = 640
DEFAULT_CAM_THRESHOLD = 0.5
DEFAULT_JOIN_CELLS = 3.0
#: A window supports a box when it holds at least this share of it (see support_score).
SUPPORT_SHARE = 0.7


@dataclass(frozen=True)
class Verdicts:
    """Per logo class: the image score (its best tile's probability), the threshold, and the verdict."""

    scores: dict[str, float]
    thresholds: dict[str, float]
    present: list[str]


def verdicts(ev: TileEvidence, meta: ModelMeta) -> Verdicts:
    """A class is present when its best tile's probability reaches the class's image threshold."""
    neg = meta.classes.index(meta.negative_class)
    probs = ev.probs
    scores = {c: float(probs[:, i].max()) if len(probs) else 0.0 for i, c in enumerate(meta.classes) if i != neg}
    thresholds = {c: float(meta.image_thresholds.get(c, meta.threshold(c))) for c in scores}
    return Verdicts(scores, thresholds, [c for c in scores if scores[c] >= thresholds[c]])


def support_score(d: Detection, tiles: list[Tile], p: np.ndarray) -> Detection:
    """Re-score a box by the mean probability of every tile of its level that holds most of it.

    A real logo is seen by all the overlapping windows around it (up to four at 50% overlap); a false
    alarm usually by one. The mean over the windows that should see the box separates the two far
    better than the single best window does.
    """
    support = [
        float(pt)
        for t, pt in zip(tiles, p, strict=True)
        if t.scale == d.scale and containment(d, t.box()) >= SUPPORT_SHARE
    ]
    return replace(d, score=float(np.mean(support))) if support else d


def _level_canvases(
    ev: TileEvidence, backend: Backend, opts: ScanOptions, c: int, tile_thr: float | None = None
) -> dict[float, LevelCanvas]:
    """The positive tiles' maps of class `c`, stitched per pyramid level."""
    meta = backend.meta
    neg = meta.classes.index(meta.negative_class)
    tile_thr = _tile_threshold(opts, meta, meta.classes[c]) if tile_thr is None else tile_thr
    positive = np.flatnonzero(ev.probs[:, c] >= tile_thr)
    if len(positive) == 0:
        return {}
    maps = CAM_METHODS[opts.cam_method].maps(ev, backend, positive, c, neg)
    k = min(1.0, CANVAS_SIDE / max(ev.width, ev.height))
    geometry = CAM_GEOMETRY[meta.cam_layer]
    levels: dict[float, LevelCanvas] = {}
    for j, ti in enumerate(positive):
        t = ev.tiles[ti]
        levels.setdefault(t.scale, LevelCanvas(ev.width, ev.height, k)).add(
            t, maps[j], float(ev.probs[ti, c]), geometry
        )
    return levels


def _tile_threshold(opts: ScanOptions, meta: ModelMeta, label: str) -> float:
    return opts.tile_threshold if opts.tile_threshold is not None else meta.threshold(label)


def _box_labels(ev: TileEvidence, meta: ModelMeta, opts: ScanOptions, present: list[str]) -> list[tuple[str, float]]:
    """(label, tile threshold) of every label to box: the present ones with their tile thresholds, and
    with `box_floor` the absent ones whose image score reaches it, whose tiles count from the floor up
    (their best tile is below the verdict's threshold, often below the tile threshold too)."""
    out = [(c, _tile_threshold(opts, meta, c)) for c in present]
    if opts.box_floor is None or not len(ev.probs):
        return out
    neg = meta.classes.index(meta.negative_class)
    for ci, c in enumerate(meta.classes):
        if ci != neg and c not in present and float(ev.probs[:, ci].max()) >= opts.box_floor:
            out.append((c, min(_tile_threshold(opts, meta, c), opts.box_floor)))
    return out


def _level_boxes(
    ev: TileEvidence, meta: ModelMeta, opts: ScanOptions, label: str, levels: dict, tile_thr: float
) -> list[Detection]:
    """Boxes of one class from its stitched levels: components, trusted sizes, support re-scoring."""
    ci = meta.classes.index(label)
    geometry = CAM_GEOMETRY[meta.cam_layer]
    cam_thr = opts.cam_threshold if opts.cam_threshold is not None else (meta.cam_threshold or DEFAULT_CAM_THRESHOLD)
    join_cells = opts.join_cells if opts.join_cells is not None else (meta.join_cells or DEFAULT_JOIN_CELLS)
    out: list[Detection] = []
    for s, canvas in levels.items():
        join = join_cells * geometry[0] * canvas.k / s  # map cells -> canvas pixels at this level
        found = [d for d in canvas.boxes(label, s, cam_thr, join) if fits_level(d, meta.input_size)]
        found = [support_score(d, ev.tiles, ev.probs[:, ci]) for d in found]
        out += [d for d in found if d.score >= tile_thr]  # the image verdict already passed
    return out


def find_boxes(
    ev: TileEvidence, backend: Backend, opts: ScanOptions, present: list[str], canvases: dict | None = None
) -> list[Detection]:
    """Boxes of the classes judged present (and with `box_floor`, of the others scoring at least it):
    stitched CAMs per level, merged across levels, calibrated."""
    meta = backend.meta
    dets: list[Detection] = []
    for label, tile_thr in _box_labels(ev, meta, opts, present):
        levels = (canvases or {}).get(label) if label in present else None
        if levels is None:
            levels = _level_canvases(ev, backend, opts, meta.classes.index(label), tile_thr)
        dets += _level_boxes(ev, meta, opts, label, levels, tile_thr)
    boxes = merge_levels(dets, opts.merge) if dets else []
    if meta.box_calibration and opts.box_calibration:
        boxes = BoxCalibration.from_dict(meta.box_calibration).apply(boxes, meta.input_size, ev.width, ev.height)
    return boxes


def heatmaps(ev: TileEvidence, backend: Backend, opts: ScanOptions, labels: list[str]) -> dict[str, dict]:
    """Per class with positive tiles: its stitched levels (canvases), reused by find_boxes."""
    meta = backend.meta
    out = {}
    for label in labels:
        levels = _level_canvases(ev, backend, opts, meta.classes.index(label))
        if levels:
            out[label] = levels
    return out


def assemble_result(ev: TileEvidence, backend: Backend, opts: ScanOptions, path: str = "") -> ScanResult:
    """scores + CAMs -> image verdicts, stitched maps per level, boxes -> the result. No model calls."""
    t0 = time.perf_counter()
    v = verdicts(ev, backend.meta)
    result = ScanResult(
        path=path,
        width=ev.width,
        height=ev.height,
        scores=v.scores,
        has_logo=bool(v.present),
        labels=v.present,
        model={"name": backend.model_name, "sha256": backend.model_sha256, "backend": backend.name},
        notes=list(ev.notes),
    )
    canvases = heatmaps(ev, backend, opts, list(v.scores)) if opts.heatmap else {}
    if opts.boxes:
        result.boxes = find_boxes(ev, backend, opts, v.present, canvases)
    if opts.heatmap:
        result.heatmaps = {
            c: np.max(np.stack([lv.score for lv in levels.values()]), axis=0) for c, levels in canvases.items()
        }
    result.timings_ms = {
        "tiling": ev.tiling_ms,
        "model": ev.model_ms,
        "boxes": (time.perf_counter() - t0) * 1e3,
        "tiles": float(len(ev.tiles)),
    }
    return result


def scan_pixels(backend: Backend, pixels: np.ndarray, opts: ScanOptions, path: str = "") -> ScanResult:
    """Scan one RGB uint8 image already in memory: the whole pipeline, one way."""
    return assemble_result(tile_evidence(backend, pixels, opts), backend, opts, path)
