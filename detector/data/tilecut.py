"""Cut a class-folder tile dataset out of box-annotated scenes, with the scanner's own tiling.

A tile is positive for a logo when most of the logo's box lies inside it and the logo spans a sensible
fraction of the tile (what the classifier can judge); it is negative when no logo box touches it; every
other tile is ambiguous and left out, so the classifier is never taught a half-visible logo as "none".
All tiles of one scene share a split (`_nohash_` in their names), so no scene leaks across splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.data.boxes import BoxDataset
from detector.data.folders import DEFAULT_NEGATIVE_CLASS
from detector.geometry import Box
from detector.images import load_image
from detector.pipeline.tiling import Tile, cut_tiles, pyramid_tiles, resize_level


@dataclass(frozen=True)
class TileRules:
    size: int = 128
    overlap: float = 0.5
    min_inside: float = 0.7  # of the logo box's area inside the tile
    min_fill: float = 0.2  # logo's longest side / tile side
    max_fill: float = 1.0
    negative_margin: float = 2.0  # px (original image) a negative tile keeps from every box
    negatives_per_scene: int = 4
    max_positives_per_box: int = 6


def classify_tile(tile: Tile, boxes: list[Box], rules: TileRules) -> str | None:
    """The tile's label, None for negative, or '' when ambiguous."""
    tx1, ty1, tx2, ty2 = tile.box()
    best, best_inside = None, 0.0
    touched = False
    m = rules.negative_margin
    for b in boxes:
        ix = min(tx2, b.x2) - max(tx1, b.x1)
        iy = min(ty2, b.y2) - max(ty1, b.y1)
        if min(tx2, b.x2 + m) - max(tx1, b.x1 - m) > 0 and min(ty2, b.y2 + m) - max(ty1, b.y1 - m) > 0:
            touched = True
        if ix <= 0 or iy <= 0:
            continue
        inside = ix * iy / max(b.width * b.height, 1e-6)
        fill = max(b.width, b.height) * tile.scale / tile.size
        if inside >= rules.min_inside and rules.min_fill <= fill <= rules.max_fill and inside > best_inside:
            if best is not None and best != b.label:
                return ""  # two different logos qualify: ambiguous
            best, best_inside = b.label, inside
    if best is not None:
        return best
    return "" if touched else None


def scan_scales(width: int, height: int, size: int) -> list[float]:
    """The levels the scanner's default plan gives this image (its upscale cap and window budget), so
    training tiles look like the tiles a scan will see; none for an image no plan can fit."""
    from detector.pipeline.options import ScanOptions
    from detector.pipeline.plan import plan_scales
    from detector.pipeline.tiling import BudgetError

    try:
        return plan_scales(width, height, size, ScanOptions())
    except BudgetError:
        return []


def scene_tiles(
    image: np.ndarray, boxes: list[Box], rules: TileRules, rng: np.random.Generator, scales: list[float] | None = None
) -> list[tuple[str | None, Tile, np.ndarray]]:
    """(label or None for negative, tile, pixels) for the kept tiles of one scene."""
    h, w = image.shape[:2]
    scales = scales or scan_scales(w, h, rules.size)
    tiles = pyramid_tiles(w, h, scales, rules.size, rules.overlap)
    pos: dict[str, list[Tile]] = {}
    neg: list[Tile] = []
    for t in tiles:
        label = classify_tile(t, boxes, rules)
        if label is None:
            neg.append(t)
        elif label:
            pos.setdefault(label, []).append(t)
    chosen: list[tuple[str | None, Tile]] = []
    for label, ts in pos.items():
        cap = rules.max_positives_per_box * sum(b.label == label for b in boxes)
        picks = rng.permutation(len(ts))[:cap]
        chosen += [(label, ts[i]) for i in sorted(picks)]
    chosen += [(None, t) for t in _pick_negatives(image, neg, rules.negatives_per_scene, rng)]
    pixels = cut_tiles(image, [t for _, t in chosen])
    return [(label, t, px) for (label, t), px in zip(chosen, pixels, strict=True)]


def _pick_negatives(image: np.ndarray, tiles: list[Tile], n: int, rng: np.random.Generator) -> list[Tile]:
    """Half the negatives are the busiest tiles (text, other marks, edges): the hard ones; half at random.

    Busyness is the mean |Laplacian| over the tile, read from one integral image per pyramid level.
    """
    if len(tiles) <= n:
        return tiles
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    sums: dict[float, np.ndarray] = {}
    busy = np.empty(len(tiles))
    for i, t in enumerate(tiles):
        if t.scale not in sums:
            lap = np.abs(cv2.Laplacian(resize_level(grey, t.scale), cv2.CV_32F))
            sums[t.scale] = cv2.integral(lap)
        ii = sums[t.scale]
        y2, x2 = min(t.y + t.size, ii.shape[0] - 1), min(t.x + t.size, ii.shape[1] - 1)
        busy[i] = ii[y2, x2] - ii[t.y, x2] - ii[y2, t.x] + ii[t.y, t.x]
    hard = [int(i) for i in np.argsort(-busy)[: n // 2]]
    rest = [int(i) for i in rng.permutation(len(tiles)) if i not in hard][: n - len(hard)]
    return [tiles[i] for i in sorted(hard + rest)]


def tile_name(scene_file: str, t: Tile) -> str:
    stem = Path(scene_file).with_suffix("").as_posix().replace("/", "__")
    return f"{stem}_nohash_s{t.scale:.4f}_x{t.x}_y{t.y}.jpg"


def write_scene_tiles(
    out: Path,
    scene_file: str,
    image: np.ndarray,
    boxes: list[Box],
    rules: TileRules,
    rng: np.random.Generator,
    negative_class: str = DEFAULT_NEGATIVE_CLASS,
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for label, t, px in scene_tiles(image, boxes, rules, rng):
        cls = label or negative_class
        d = out / cls
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(
            str(d / tile_name(scene_file, t)), cv2.cvtColor(px, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
        counts[cls] = counts.get(cls, 0) + 1
    return counts


def tiles_from_box_dataset(
    ds: BoxDataset, out: Path, rules: TileRules, seed: int = 0, negative_class: str = DEFAULT_NEGATIVE_CLASS
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Cut tiles from every image of a box dataset on disk; unreadable images are reported, not fatal."""
    from detector.errors import ImageLoadError

    totals: dict[str, int] = {}
    skipped: list[tuple[str, str]] = []
    for i, rec in enumerate(ds.images):
        try:
            img = load_image(ds.image_path(rec)).pixels
        except ImageLoadError as e:
            skipped.append((rec.file, e.reason))
            continue
        rng = np.random.default_rng([seed, i])
        for k, v in write_scene_tiles(out, rec.file, img, rec.boxes, rules, rng, negative_class).items():
            totals[k] = totals.get(k, 0) + v
    return totals, skipped


def tile_dataset_for(
    box_dataset: str | Path, size: int, cache_root: Path, negative_class: str = DEFAULT_NEGATIVE_CLASS
) -> Path:
    """The class-folder tiles of a box dataset at this tile size, cut once and kept in the cache.

    The key covers the annotations and the cutting rules; a cut interrupted half-way is redone.
    """
    import hashlib
    import shutil

    from detector.data.boxes import ANNOTATIONS, read_box_dataset

    rules = TileRules(size=size)
    # "scan-plan-2": tiles follow the scanner's budgeted plan (capped upscale); older cuts are not reused
    key = hashlib.sha256(
        (Path(box_dataset) / ANNOTATIONS).read_bytes() + repr((rules, negative_class, "scan-plan-2")).encode()
    )
    out = cache_root / f"{Path(box_dataset).resolve().name}-{size}-{key.hexdigest()[:16]}"
    if (out / ".complete").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    ds = read_box_dataset(box_dataset)
    _, skipped = tiles_from_box_dataset(ds, out, rules, negative_class=negative_class)
    (out / negative_class).mkdir(parents=True, exist_ok=True)
    (out / ".complete").write_text("\n".join(f"{p}\t{r}" for p, r in skipped) + "\n")
    return out
