"""Hard-negative mining: the windows a model wrongly calls a logo, added to its training tiles.

A sliding-window detector sees hundreds of windows per photo, and a busy photo (text, other brands'
marks, patterned surfaces) is where a classifier trained on random negatives fires. The classic cure
(Dalal & Triggs; Felzenszwalb et al.) is to scan the training scenes with the trained model, keep the
windows it scores as a logo although no logo box touches them, add them to the negative class and
train again (`detect train TILES --init MODEL`). Only windows that touch no box are taken, with the same
rule the tile cutter uses, so a half-visible logo is never taught as "none".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.backends.base import Backend
from detector.data.boxes import BoxDataset
from detector.data.tilecut import TileRules, classify_tile, tile_name
from detector.errors import ImageLoadError
from detector.evaluation.scenes import scene_split
from detector.images import load_image
from detector.pipeline.evidence import tile_evidence
from detector.pipeline.options import ScanOptions
from detector.pipeline.tiling import cut_tiles


@dataclass
class MiningReport:
    """What a mining pass saw and wrote: the false windows outnumber the written ones (per_scene caps them)."""

    scenes: int
    windows: int
    false_windows: int  # windows over the tile threshold that touch no logo box
    written: int
    out: Path


def mine_hard_negatives(
    backend: Backend,
    ds: BoxDataset,
    tiles_dir: str | Path,
    split: str = "all",
    per_scene: int = 6,
    progress: bool = True,
) -> MiningReport:
    """Write each scene's worst false windows (highest logo probability) into tiles_dir/<negative class>/."""
    meta = backend.meta
    neg = meta.classes.index(meta.negative_class)
    pos = [i for i in range(len(meta.classes)) if i != neg]
    out = Path(tiles_dir) / meta.negative_class
    out.mkdir(parents=True, exist_ok=True)
    rules = TileRules(size=meta.input_size)
    thresholds = np.array([meta.threshold(meta.classes[i]) for i in pos])
    records = scene_split(ds, split)
    it = records
    if progress:
        from tqdm import tqdm

        it = tqdm(records, desc="mine", unit="scene", disable=None, leave=False)
    windows = false_windows = written = 0
    for rec in it:
        try:
            px = load_image(ds.image_path(rec)).pixels
        except ImageLoadError:
            continue
        ev = tile_evidence(backend, px, ScanOptions(boxes=False))
        windows += len(ev.tiles)
        margin = ev.probs[:, pos] / thresholds  # >= 1: the model calls this window a logo
        best = margin.max(axis=1)
        wrong = [i for i in np.argsort(-best) if best[i] >= 1 and classify_tile(ev.tiles[i], rec.boxes, rules) is None]
        false_windows += len(wrong)
        picked = [ev.tiles[i] for i in wrong[:per_scene]]
        for t, tile_px in zip(picked, cut_tiles(px, picked), strict=True):
            name = tile_name(rec.file, t).replace("_nohash_", "_nohash_hard_")  # the scene's split
            cv2.imwrite(str(out / name), cv2.cvtColor(tile_px, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
            written += 1
    return MiningReport(len(records), windows, false_windows, written, out)
