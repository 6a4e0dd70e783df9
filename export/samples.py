"""Tiles to calibrate int8 quantization on and to check an export against: from data, or drawn in code.

Calibration uses the dataset's train split and the agreement check its val + test splits, so int8 is
judged on tiles its calibration never saw. Without data, tiles cut from synthetic scenes of the demo
logo (the scene generator and the training tile cutter) still make a fair numerical check (every pixel
statistic an image has), though a brand model's own tiles calibrate int8 better.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.errors import DatasetError
from detector.model.meta import ModelMeta

#: Scenes tried beyond 4 per tile before giving up (a tile size no scan plan of a 640x480 scene fits).
_MAX_SCENES = 50


def dataset_tiles(data: str | Path, meta: ModelMeta, n: int, splits: tuple[str, ...], seed: int = 0) -> np.ndarray:
    """Up to n tiles (uint8, input size) from the given splits of a class-folder or box dataset."""
    from detector.data.boxes import is_box_dataset
    from detector.data.folders import decode_samples, scan_dataset
    from detector.data.tilecut import tile_dataset_for
    from detector.training.bottleneck import default_cache_dir

    if is_box_dataset(data):
        data = tile_dataset_for(data, meta.input_size, default_cache_dir().parent / "tiles", meta.negative_class)
    ds = scan_dataset(data, meta.negative_class)
    samples = [s for s in ds.samples if s.split in splits]
    if not samples:
        raise DatasetError(f"{data}: no images in the {'/'.join(splits)} split(s) to take tiles from")
    rng = np.random.default_rng(seed)
    picked = [samples[i] for i in sorted(rng.permutation(len(samples))[:n])]
    decoded, _ = decode_samples(picked, meta.input_size)
    if not decoded:
        raise DatasetError(f"{data}: none of the sampled images could be read")
    return np.stack([d.pixels for d in decoded])


def synthetic_tiles(size: int, n: int, seed: int = 0) -> np.ndarray:
    """n tiles (uint8, size x size), demo-logo and no-logo in turn: a dataset-free sample.

    They are cut from synthetic scenes by the training tile cutter, so they look like the windows a
    model is trained on and scans (logos at the sizes a tile holds, busy negatives), not like a
    separate generator's idea of a tile."""
    from detector.data.tilecut import TileRules, scene_tiles
    from detector.synth import SceneConfig, builtin_backgrounds, demo_logo, render_scene, scene_rng, trim_alpha

    logos = {"demo-logo": trim_alpha(demo_logo(256))}
    backgrounds = builtin_backgrounds(np.random.default_rng(seed))
    rules, cfg = TileRules(size=size), SceneConfig()
    pos: list[np.ndarray] = []
    neg: list[np.ndarray] = []
    for i in range(_MAX_SCENES + 4 * n):
        if len(pos) >= (n + 1) // 2 and len(neg) >= n // 2:
            break
        scene = render_scene(logos, backgrounds, cfg, scene_rng(seed, i))
        for label, _, px in scene_tiles(scene.image, scene.boxes, rules, scene_rng(seed, i + (1 << 30))):
            (pos if label else neg).append(px)
    if len(pos) < (n + 1) // 2 or len(neg) < n // 2:
        raise DatasetError(f"synthetic scenes gave too few {size}-px tiles; give data (the brand's tiles or scenes)")
    return np.stack([pos[i // 2] if i % 2 == 0 else neg[i // 2] for i in range(n)])
