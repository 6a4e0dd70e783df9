"""image -> pyramid windows -> backend -> scores + CAMs: the only stage that runs the model.

Two sources give the same `TileEvidence`: `tiles` cuts every window and batches them; `dense` runs
the backbone once per pyramid level and reads each window's cells off the level's map
(detector.pipeline.dense). `EVIDENCE_SOURCES` is the one table of them; the rest of the pipeline
never asks which one ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from detector.backends.base import Backend
from detector.pipeline.cam import CAM_METHODS
from detector.pipeline.dense import dense_evidence
from detector.pipeline.options import SCAN_MODES, ScanOptions
from detector.pipeline.plan import plan_pyramid
from detector.pipeline.tiling import Tile, cut_tiles, pyramid_tiles


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


class EvidenceSource(Protocol):
    """Runs the backend over one image's windows at the planned scales."""

    def collect(
        self, backend: Backend, pixels: np.ndarray, scales: list[float], opts: ScanOptions, features: bool
    ) -> TileEvidence: ...


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


class CutTiles:
    """Cut every window of every level, a batch at a time, and classify the batches."""

    def collect(
        self, backend: Backend, pixels: np.ndarray, scales: list[float], opts: ScanOptions, features: bool
    ) -> TileEvidence:
        t0 = time.perf_counter()
        h, w = pixels.shape[:2]
        tiles = pyramid_tiles(w, h, scales, backend.meta.input_size, opts.overlap)
        levels: dict[float, np.ndarray] = {}
        cut_s = [0.0]

        def cut(i: int, j: int) -> np.ndarray:
            c0 = time.perf_counter()
            px = cut_tiles(pixels, tiles[i:j], levels=levels)
            cut_s[0] += time.perf_counter() - c0
            return px

        t1 = time.perf_counter()
        probs, cams, feats = classify_tiles(backend, len(tiles), cut, opts.batch_size, features)
        model_ms = (time.perf_counter() - t1 - cut_s[0]) * 1e3
        return TileEvidence(w, h, tiles, probs, cams, feats, model_ms, ((t1 - t0) + cut_s[0]) * 1e3)


class DenseLevels:
    """One backbone pass per pyramid level; the windows' cells read off the level's map."""

    def collect(
        self, backend: Backend, pixels: np.ndarray, scales: list[float], opts: ScanOptions, features: bool
    ) -> TileEvidence:
        t0 = time.perf_counter()
        h, w = pixels.shape[:2]
        tiles, probs, cams, feats = dense_evidence(backend, pixels, scales, opts.overlap, features)
        return TileEvidence(w, h, tiles, probs, cams, feats, (time.perf_counter() - t0) * 1e3, 0.0)


#: ScanOptions.mode -> its source.
EVIDENCE_SOURCES: dict[str, EvidenceSource] = {"tiles": CutTiles(), "dense": DenseLevels()}
assert tuple(EVIDENCE_SOURCES) == SCAN_MODES, "ScanOptions.mode's choices are the sources"


def tile_evidence(backend: Backend, pixels: np.ndarray, opts: ScanOptions) -> TileEvidence:
    """The model's evidence for one image, from the source `opts.mode` names, within the work budget."""
    t0 = time.perf_counter()
    h, w = pixels.shape[:2]
    plan = plan_pyramid(w, h, backend.meta.input_size, opts)
    features = opts.boxes and CAM_METHODS[opts.cam_method].needs_features
    plan_ms = (time.perf_counter() - t0) * 1e3
    ev = EVIDENCE_SOURCES[opts.mode].collect(backend, pixels, plan.scales, opts, features)
    ev.tiling_ms += plan_ms  # planning the pyramid is part of tiling, whichever source cut the windows
    ev.notes = [plan.note] if plan.note else []
    return ev
