"""The scan pipeline for one image: image -> tiles -> scores + CAMs -> stitched maps -> boxes -> result.

Every stage is a plain function of plain values; the backend is the only model-specific piece and it
is passed in. Tiles of all pyramid levels are batched together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from detector.backends.base import Backend
from detector.boxes import MERGE_METHODS, Detection, LevelCanvas, fits_level, merge_levels
from detector.boxfit import BoxCalibration
from detector.cam import CAM_METHODS, gradcam_from_cams, gradcam_pp
from detector.dense import dense_evidence
from detector.errors import DetectorError
from detector.model import CAM_GEOMETRY
from detector.results import ScanResult
from detector.tiling import Tile, cut_tiles, default_scales, pyramid_tiles, scales_for_logo_range

#: Heatmaps are stitched at most this many pixels on the long side (boxes are scaled back exactly).
CANVAS_SIDE = 640
DEFAULT_CAM_THRESHOLD = 0.5
DEFAULT_JOIN_CELLS = 3.0
SCAN_MODES = ("tiles", "dense")


@dataclass(frozen=True)
class ScanOptions:
    scales: tuple[float, ...] | None = None  # pyramid scales; None: from min/max logo or the default range
    min_logo: float | None = None  # pixels
    max_logo: float | None = None
    overlap: float = 0.5
    batch_size: int = 32
    boxes: bool = True
    heatmap: bool = False
    cam_threshold: float | None = None  # fraction of each tile map's peak; None: the model's tuned value
    cam_method: str = "gradcam"
    tile_threshold: float | None = None  # None: the model's per-class tile thresholds
    join_cells: float | None = None  # CAM fragments this many map cells apart are one logo; None: the model's
    merge: str = "nms"  # how boxes of the pyramid levels become one per logo (see boxes.merge_levels)
    mode: str = "tiles"  # "tiles": cut every window; "dense": one backbone pass per level (detector.dense)
    calibrated_boxes: bool = True  # apply the model's box calibration (detector.boxfit)

    def validate(self) -> None:
        if self.cam_method not in CAM_METHODS:
            raise DetectorError(f"--cam-method must be one of {', '.join(CAM_METHODS)}")
        if not 0 <= self.overlap < 1:
            raise DetectorError("--overlap must be in [0, 1)")
        if self.scales is not None and (not self.scales or min(self.scales) <= 0):
            raise DetectorError("--scales must be positive numbers")
        if self.merge not in MERGE_METHODS:
            raise DetectorError(f"--merge must be one of {', '.join(MERGE_METHODS)}")
        if self.batch_size < 1:
            raise DetectorError("--batch-size must be at least 1")
        if self.mode not in SCAN_MODES:
            raise DetectorError(f"--mode must be one of {', '.join(SCAN_MODES)}")


def plan_scales(width: int, height: int, tile: int, opts: ScanOptions) -> list[float]:
    if opts.scales:
        return list(opts.scales)
    if opts.min_logo or opts.max_logo:
        short = min(width, height)
        lo = opts.min_logo or 0.04 * short
        hi = opts.max_logo or max(lo, 0.7 * short)
        return scales_for_logo_range(tile, lo, hi)
    return default_scales(width, height, tile)


def classify_tiles(backend: Backend, tiles: np.ndarray, batch_size: int, with_features: bool):
    """Run the backend over all tiles in batches; concatenated probs, cams (and features)."""
    probs, cams, feats = [], [], []
    for i in range(0, len(tiles), batch_size):
        out = backend.predict(tiles[i : i + batch_size], with_features=with_features)
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
    scales = plan_scales(w, h, size, opts)
    need_features = opts.boxes and opts.cam_method == "gradcam++"
    if opts.mode == "dense":
        tiles, probs, cams, feats = dense_evidence(backend, pixels, scales, opts.overlap, need_features)
        return TileEvidence(w, h, tiles, probs, cams, feats, (time.perf_counter() - t0) * 1e3, 0.0)
    tiles = pyramid_tiles(w, h, scales, size, opts.overlap)
    tile_px = cut_tiles(pixels, tiles)
    t1 = time.perf_counter()
    probs, cams, feats = classify_tiles(backend, tile_px, opts.batch_size, need_features)
    t2 = time.perf_counter()
    return TileEvidence(w, h, tiles, probs, cams, feats, (t2 - t1) * 1e3, (t1 - t0) * 1e3)


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
