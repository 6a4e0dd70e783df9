"""Datasets as folders of class subfolders, with splits that never reshuffle.

The split of a file depends only on its own name (as in TensorFlow's original retrain script), so a
user who adds photos next month keeps every old photo in the split it was evaluated in; a `_nohash_`
suffix lets near-duplicates of one photo (crops, edits) share a split and never leak across it.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.errors import DatasetError, ImageLoadError
from detector.images import is_image_path, load_image, resize_to

SPLITS = ("train", "val", "test")
DEFAULT_NEGATIVE_CLASS = "no-logo"
_HASH_BUCKETS = 2**27 - 1
_NOHASH = re.compile(r"_nohash_.*$")


def split_of(file_name: str, val_percent: float = 10.0, test_percent: float = 10.0) -> str:
    """The split a file belongs to, from its name alone (stable as the dataset grows)."""
    stem = Path(file_name).stem
    key = _NOHASH.sub("", stem).encode("utf-8")
    bucket = int(hashlib.sha1(key).hexdigest(), 16) % (_HASH_BUCKETS + 1)
    percent = bucket * (100.0 / _HASH_BUCKETS)
    if percent < val_percent:
        return "val"
    if percent < val_percent + test_percent:
        return "test"
    return "train"


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    split: str


@dataclass
class Dataset:
    """The files of a class-folder dataset, their labels and splits, and what had to be skipped."""

    root: Path
    classes: list[str]  # the negative class first, then positive classes sorted
    negative_class: str
    samples: list[Sample]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def positive_classes(self) -> list[str]:
        return [c for c in self.classes if c != self.negative_class]

    def label_index(self, label: str) -> int:
        return self.classes.index(label)

    def in_split(self, split: str) -> list[Sample]:
        if split == "all":
            return list(self.samples)
        return [s for s in self.samples if s.split == split]

    def counts(self) -> dict[str, dict[str, int]]:
        """{class: {split: n}} for the summary table."""
        table: dict[str, Counter] = {c: Counter() for c in self.classes}
        for s in self.samples:
            table[s.label][s.split] += 1
        return {c: {sp: table[c][sp] for sp in SPLITS} for c in self.classes}


def _walk_images(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.rglob("*")):
        if p.name.startswith(".") or not p.is_file():
            continue
        yield p


def scan_dataset(
    root: str | Path,
    negative_class: str = DEFAULT_NEGATIVE_CLASS,
    val_percent: float = 10.0,
    test_percent: float = 10.0,
) -> Dataset:
    """List a class-folder dataset. Files that are not images by name are skipped with a reason;
    whether the rest decode is checked by `verify_images` (or when training reads them)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; a dataset is a folder of class subfolders")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"{root}: no class subfolders (expected e.g. {root}/logo and {root}/{negative_class})")
    names = [d.name for d in class_dirs]
    if negative_class not in names:
        raise DatasetError(
            f"{root}: no '{negative_class}' folder for the negative class; found {', '.join(names)}. "
            "Name it with --negative-class"
        )
    if len(names) < 2:
        raise DatasetError(f"{root}: need the negative class and at least one logo class")
    classes = [negative_class] + sorted(n for n in names if n != negative_class)
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for d in class_dirs:
        for p in _walk_images(d):
            if not is_image_path(p):
                skipped.append((str(p), f"not an image file extension ({p.suffix or 'none'})"))
                continue
            samples.append(Sample(p, d.name, split_of(p.name, val_percent, test_percent)))
    if not samples:
        raise DatasetError(f"{root}: the class folders hold no images")
    return Dataset(root, classes, negative_class, samples, skipped)


def scan_datasets(
    roots: list[str | Path],
    negative_class: str = DEFAULT_NEGATIVE_CLASS,
    val_percent: float = 10.0,
    test_percent: float = 10.0,
) -> Dataset:
    """Several class-folder datasets as one (e.g. tiles of real photos and of synthetic scenes): the
    union of their classes, every file keeping the split its own name gives it."""
    parts = [scan_dataset(r, negative_class, val_percent, test_percent) for r in roots]
    if len(parts) == 1:
        return parts[0]
    positives = sorted({c for p in parts for c in p.positive_classes})
    return Dataset(
        parts[0].root,
        [negative_class] + positives,
        negative_class,
        [s for p in parts for s in p.samples],
        [s for p in parts for s in p.skipped],
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class DecodedSample:
    sample: Sample
    sha256: str
    pixels: np.ndarray  # size x size x 3 uint8


def decode_samples(
    samples: Iterable[Sample], size: int, workers: int = 4, progress: str | None = None
) -> tuple[list[DecodedSample], list[tuple[str, str]]]:
    """Decode and resize files in a thread pool; unreadable files come back as (path, reason).

    Order is preserved, so results line up with the input list minus the failures.
    """
    samples = list(samples)

    def one(s: Sample) -> DecodedSample | tuple[str, str]:
        try:
            img = load_image(s.path, draft_size=(size * 2, size * 2))
            return DecodedSample(s, img.sha256, resize_to(img.pixels, size))
        except ImageLoadError as e:
            return (str(s.path), e.reason)

    good: list[DecodedSample] = []
    bad: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(one, samples)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(samples), desc=progress, unit="img", leave=False, disable=None)
        for r in results:
            (good if isinstance(r, DecodedSample) else bad).append(r)
    return good, bad


def fingerprint(decoded: Iterable[DecodedSample]) -> str:
    """A hash of (label, content) pairs: two models trained on the same pictures share it."""
    h = hashlib.sha256()
    for line in sorted(f"{d.sample.label}\t{d.sha256}" for d in decoded):
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()
