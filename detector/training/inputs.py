"""What the phases read: the training and validation images, decoded once, with their labels.

A box dataset (scenes or real photos with boxes) is trained on as the tiles the scanner's own tiling
cuts from it, cut once and cached; a class-folder dataset is read as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from detector.data.boxes import is_box_dataset
from detector.data.folders import Dataset, DecodedSample, decode_samples
from detector.data.tilecut import tile_dataset_for
from detector.errors import DatasetError
from detector.images import resize_to
from detector.training.bottleneck import default_cache_dir

#: Training images are decoded this much larger when random crops or zooms will cut them down.
CROP_ROOM = 1.25


def class_folders(
    source: str, input_size: int, cache_dir: str | None, negative_class: str, log: Callable[[str], None]
) -> str:
    """A class-folder dataset as it is; a box dataset as the folder of its tiles (cut on first use)."""
    if not is_box_dataset(source):
        return source
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
    tiles = tile_dataset_for(source, input_size, cache_root.parent / "tiles", negative_class)
    log(f"box dataset {source}: training on its tiles in {tiles}")
    return str(tiles)


@dataclass
class PhaseData:
    """Decoded train/val images, their labels (class indices), and the validation pixels as one array.

    The training images are `train_size` px on a side: larger than the input when crops need room."""

    train: list[DecodedSample]
    y_train: np.ndarray
    val: list[DecodedSample]
    y_val: np.ndarray
    val_pixels: np.ndarray
    train_size: int

    def at_input_size(self, size: int) -> PhaseData:
        """The same data with the training images at the classifier's input size (the head phase's)."""
        if self.train_size == size:
            return self
        return replace(self, train=[replace(d, pixels=resize_to(d.pixels, size)) for d in self.train], train_size=size)


def load_phase_data(
    ds: Dataset, size: int, crop_room: bool, source: str, log: Callable[[str], None]
) -> tuple[PhaseData, list[tuple[str, str]]]:
    """Decode the train and val splits (train larger when `crop_room`); returns the data and what was
    skipped (the dataset's unreadable files and the ones that failed to decode). `source` names the
    data in errors, as the user gave it."""
    train_s, val_s = ds.in_split("train"), ds.in_split("val")
    log(f"dataset: {len(ds.samples)} images, classes {ds.classes}; train {len(train_s)}, val {len(val_s)}")
    src_size = int(round(size * CROP_ROOM)) if crop_room else size
    train_d, bad_t = decode_samples(train_s, src_size, progress="decode train")
    val_d, bad_v = decode_samples(val_s, size, progress="decode val")
    for path, reason in bad_t + bad_v:
        log(f"  skipped {path}: {reason}")
    if not train_d:
        raise DatasetError(f"{source}: no readable training images")
    y_train = np.array([ds.label_index(d.sample.label) for d in train_d])
    y_val = np.array([ds.label_index(d.sample.label) for d in val_d])
    if len(np.unique(y_train)) < 2:
        raise DatasetError(f"{source}: the training split holds only one class; add images of each class")
    val_pixels = np.stack([d.pixels for d in val_d]) if val_d else np.zeros((0, size, size, 3), np.uint8)
    return PhaseData(train_d, y_train, val_d, y_val, val_pixels, src_size), ds.skipped + bad_t + bad_v
