"""The scan pipeline for one image: image -> tiles -> scores + CAMs -> stitched maps -> boxes -> result.

Every stage is a plain function of plain values; the backend is the only model-specific piece and it
is passed in. Tiles of all pyramid levels are batched together, cut one batch at a time, and the pyramid
is planned within the options' work budget (`plan_pyramid`) before any pixel is resized.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from detector.backends.base import Backend
from detector.model.store import CAM_GEOMETRY
from detector.pipeline.boxes import Detection, LevelCanvas, fits_level, merge_levels
from detector.pipeline.calibration import BoxCalibration
from detector.pipeline.cam import gradcam_from_cams, gradcam_pp
from detector.pipeline.dense import dense_evidence
from detector.pipeline.options import SCAN_MODES, OptionError, ScanOptions
from detector.pipeline.tiling import (
    DEFAULT_MAX_LOGO_FRACTION,
    DEFAULT_MIN_LOGO_FRACTION,
    BudgetError,
    PyramidPlan,
    Tile,
    capped_logo_scales,
    cut_tiles,
    fit_budget,
    pyramid_tiles,
)
from detector.results.record import ScanResult

__all__ = ["SCAN_MODES", "BudgetError", "OptionError", "ScanOptions", "plan_pyramid", "plan_scales", "scan_pixels"]

#: Heatmaps are stitched at most this many pixels on the long side (boxes are scaled back exactly).
CANVAS_SIDE = 640
DEFAULT_CAM_THRESHOLD = 0.5
DEFAULT_JOIN_CELLS = 3.0


def plan_pyramid(width: int, height: int, tile: int, opts: ScanOptions) -> PyramidPlan:
    """The levels one image is scanned at, within the options' work budget (see tiling.fit_budget).

    Scales the caller names are kept as they are (refused when over `max_windows`); levels derived
    from logo sizes never enlarge beyond `max_upscale` and are coarsened to fit the budget, so a
    photo's cost follows its pixels, not the inverse of its size.
    """
    if opts.scales:
        return fit_budget(width, height, tile, list(opts.scales), opts.overlap, opts.max_windows, exact=True)
    short = min(width, height)
    if opts.min_logo or opts.max_logo:
        hi = opts.max_logo or max(opts.min_logo or 0.0, 0.7 * short)
        lo = opts.min_logo or min(0.04 * short, hi)
    else:
        lo, hi = DEFAULT_MIN_LOGO_FRACTION * short, DEFAULT_MAX_LOGO_FRACTION * short
    levels = capped_logo_scales(tile, lo, hi, opts.max_upscale)
    return fit_budget(width, height, tile, levels, opts.overlap, opts.max_windows, exact=False)


def plan_scales(width: int, height: int, tile: int, opts: ScanOptions) -> list[float]:
    """The pyramid scales of one image (largest first); raises BudgetError when none fit the budget."""
    return plan_pyramid(width, height, tile, opts).scales


def classify_tiles(
    backend: Backend, count: int, cut: Callable[[int, int], np.ndarray], batch_size: int, with_features: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Run the backend over `count` tiles in batches; concatenated probs, cams (and features).

    `cut(start, stop)` gives one batch's pixels, so the windows of an image are cut a batch at a time
    and only one batch of pixels is in memory, however many windows the budget allows."""
    probs, cams, feats = [], [], []
    for i in range(0, count, batch_size):
        out = backend.predict(cut(i, min(i + batch_size, count)), with_features=with_features)
        probs.append(out.probs)
        cams.append(out.cams)
        if with_features:
            feats.append(out.features)
    return np.concatenate(probs), np.concatenate(cams), (np.concatenate(feats) if with_features else None)


@dataclass
class TileEvidence:
    """What the model said about one image: every tile, its probabilities and CAMs."""

    width: int
    height: int
    tiles: list[Tile]
    probs: np.ndarray  # (N, classes)
    cams: np.ndarray  # (N, h, w, classes)
    features: np.ndarray | None
    model_ms: float
    tiling_ms: float
    notes: list[str] = field(default_factory=list)  # what the work budget changed (ScanResult.notes)


def support_score(d: Detection, tiles: list[Tile], p: np.ndarray) -> Detection:
    """Re-score a box by the mean probability of every tile of its level that holds most of it.

    A real logo is seen by all the overlapping windows around it (up to four at 50% overlap); a false
    alarm usually by one. The mean over the windows that should see the box separates the two far
    better than the single best window does.
    """
    area = max((d.x2 - d.x1) * (d.y2 - d.y1), 1e-6)
    support = []
    for t, pt in zip(tiles, p, strict=True):
        if t.scale != d.scale:
            continue
        x1, y1, x2, y2 = t.box()
        inter = max(0.0, min(x2, d.x2) - max(x1, d.x1)) * max(0.0, min(y2, d.y2) - max(y1, d.y1))
        if inter / area >= 0.7:
            support.append(float(pt))
    if not support:
        return d
    return replace(d, score=float(np.mean(support)))


def tile_evidence(backend: Backend, pixels: np.ndarray, opts: ScanOptions) -> TileEvidence:
    """image -> pyramid windows -> backend: the only stage that runs the model (either mode)."""
    t0 = time.perf_counter()
    h, w = pixels.shape[:2]
    size = backend.meta.input_size
    plan = plan_pyramid(w, h, size, opts)
    notes = [plan.note] if plan.note else []
    need_features = opts.boxes and opts.cam_method == "gradcam++"
    if opts.mode == "dense":
        tiles, probs, cams, feats = dense_evidence(backend, pixels, plan.scales, opts.overlap, need_features)
        return TileEvidence(w, h, tiles, probs, cams, feats, (time.perf_counter() - t0) * 1e3, 0.0, notes)
    tiles = pyramid_tiles(w, h, plan.scales, size, opts.overlap)
    levels: dict[float, np.ndarray] = {}
    cut_s = [0.0]

    def cut(i: int, j: int) -> np.ndarray:
        c0 = time.perf_counter()
        px = cut_tiles(pixels, tiles[i:j], levels=levels)
        cut_s[0] += time.perf_counter() - c0
        return px

    t1 = time.perf_counter()
    probs, cams, feats = classify_tiles(backend, len(tiles), cut, opts.batch_size, need_features)
    t2 = time.perf_counter()
    tiling_s = (t1 - t0) + cut_s[0]
    return TileEvidence(w, h, tiles, probs, cams, feats, (t2 - t1 - cut_s[0]) * 1e3, tiling_s * 1e3, notes)


def assemble_result(ev: TileEvidence, backend: Backend, opts: ScanOptions, path: str = "") -> ScanResult:
    """scores + CAMs -> image verdicts, stitched maps per level, boxes -> the result. No model calls."""
    t0 = time.perf_counter()
    meta = backend.meta
    w, h, size, probs = ev.width, ev.height, meta.input_size, ev.probs
    neg = meta.classes.index(meta.negative_class)
    scores = {c: float(probs[:, i].max()) if len(probs) else 0.0 for i, c in enumerate(meta.classes) if i != neg}
    image_thr = {c: float(meta.image_thresholds.get(c, meta.threshold(c))) for c in scores}
    present = [c for c in scores if scores[c] >= image_thr[c]]
    result = ScanResult(
        path=path,
        width=w,
        height=h,
        scores=scores,
        has_logo=bool(present),
        labels=present,
        model={"name": backend.model_name, "sha256": backend.model_sha256, "backend": backend.name},
        notes=list(ev.notes),
    )
    if opts.boxes or opts.heatmap:
        k = min(1.0, CANVAS_SIDE / max(w, h))
        cam_thr = (
            opts.cam_threshold if opts.cam_threshold is not None else (meta.cam_threshold or DEFAULT_CAM_THRESHOLD)
        )
        dets: list[Detection] = []
        heat: dict[str, np.ndarray] = {}
        geometry = CAM_GEOMETRY[meta.cam_layer]
        join_cells = opts.join_cells if opts.join_cells is not None else (meta.join_cells or DEFAULT_JOIN_CELLS)
        for c in scores:
            ci = meta.classes.index(c)
            tile_thr = opts.tile_threshold if opts.tile_threshold is not None else meta.threshold(c)
            positive = np.flatnonzero(probs[:, ci] >= tile_thr)
            if len(positive) == 0:
                continue
            if opts.cam_method == "gradcam++":
                maps = gradcam_pp(ev.features[positive], backend.head_kernel, ci, neg)
            else:
                maps = gradcam_from_cams(ev.cams[positive], backend.head_bias, ci, neg)
            levels: dict[float, LevelCanvas] = {}
            for j, ti in enumerate(positive):
                t = ev.tiles[ti]
                levels.setdefault(t.scale, LevelCanvas(w, h, k)).add(t, maps[j], float(probs[ti, ci]), geometry)
            if c in present and opts.boxes:
                for s, canvas in levels.items():
                    join = join_cells * geometry[0] * k / s  # map cells -> canvas pixels at this level
                    found = [d for d in canvas.boxes(c, s, cam_thr, join) if fits_level(d, size)]
                    found = [support_score(d, ev.tiles, probs[:, ci]) for d in found]
                    dets += [d for d in found if d.score >= tile_thr]  # the image verdict already passed
            if opts.heatmap:
                heat[c] = np.max(np.stack([lv.score for lv in levels.values()]), axis=0)
        result.boxes = merge_levels(dets, opts.merge) if dets else []
        if meta.box_calibration and opts.calibrated_boxes:
            result.boxes = BoxCalibration.from_dict(meta.box_calibration).apply(result.boxes, size, w, h)
        if opts.heatmap:
            result.heatmaps = heat
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
