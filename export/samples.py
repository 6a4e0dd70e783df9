"""Tiles to calibrate int8 quantization on and to check an export against: from data, or drawn in code.

Calibration uses the dataset's train split and the agreement check its val + test splits, so int8 is
judged on tiles its calibration never saw. Without data, tiles of the demo logo on built-in
backgrounds still make a fair numerical check (every pixel statistic an image has), though a
brand model's own tiles calibrate int8 better.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.errors import DatasetError
from detector.model.store import ModelMeta


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
    """Half demo-logo tiles, half background tiles with distractors: a dataset-free sample."""
    from detector.synth.demo_logo import demo_logo
    from detector.synth.legacy import TileSpec, builtin_backgrounds, negative_tile, positive_tile

    rng = np.random.default_rng(seed)
    logo, bgs, spec = demo_logo(), builtin_backgrounds(rng), TileSpec(size=size)
    tiles = [
        positive_tile(logo, bgs[int(rng.integers(len(bgs)))], spec, rng)
        if i % 2 == 0
        else negative_tile(bgs[int(rng.integers(len(bgs)))], spec, rng)
        for i in range(n)
    ]
    return np.stack(tiles)
