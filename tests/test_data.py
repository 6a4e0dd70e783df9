"""Datasets: deterministic hash splits, skipped files with reasons, clear errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.data.folders import decode_samples, scan_dataset, split_of
from detector.errors import DatasetError
from tests.helpers import run_cli


def _write(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (40, 50, 3), np.uint8)
    cv2.imwrite(str(path), img)


def test_splits_follow_roughly_the_requested_shares() -> None:
    counts = Counter(split_of(f"photo_{i}.jpg") for i in range(5000))
    assert 0.77 < counts["train"] / 5000 < 0.83
    assert 0.08 < counts["val"] / 5000 < 0.12
    assert 0.08 < counts["test"] / 5000 < 0.12


def test_nohash_variants_share_a_split() -> None:
    for i in range(200):
        base = split_of(f"img{i}.jpg")
        assert split_of(f"img{i}_nohash_1.jpg") == base
        assert split_of(f"img{i}_nohash_crop-2.png") == base


def test_adding_images_never_moves_old_ones(tmp_path: Path) -> None:
    for i in range(60):
        _write(tmp_path / "logo" / f"a{i}.jpg", i)
        _write(tmp_path / "no-logo" / "deep" / "er" / f"b{i}.png", 100 + i)
    before = {s.path.name: s.split for s in scan_dataset(tmp_path).samples}
    for i in range(60, 200):
        _write(tmp_path / "logo" / f"a{i}.jpg", i)
    after = {s.path.name: s.split for s in scan_dataset(tmp_path).samples}
    assert len(after) == 260
    assert all(after[name] == split for name, split in before.items())
    assert {"train", "val", "test"} <= set(after.values())


def test_classes_negative_first_and_any_depth(tmp_path: Path) -> None:
    _write(tmp_path / "brand-b" / "x.jpg", 1)
    _write(tmp_path / "brand-a" / "sub" / "y.jpg", 2)
    _write(tmp_path / "none" / "z.jpg", 3)
    ds = scan_dataset(tmp_path, negative_class="none")
    assert ds.classes == ["none", "brand-a", "brand-b"]
    assert ds.positive_classes == ["brand-a", "brand-b"]
    assert len(ds.samples) == 3


def test_missing_negative_class_is_a_clear_error(tmp_path: Path) -> None:
    _write(tmp_path / "logo" / "x.jpg", 1)
    _write(tmp_path / "other" / "y.jpg", 1)
    with pytest.raises(DatasetError, match="--negative-class"):
        scan_dataset(tmp_path)


def _dataset_with_bad_files(root: Path) -> None:
    for i in range(6):
        _write(root / "logo" / f"ok{i}.jpg", i)
        _write(root / "no-logo" / f"ok{i}.jpg", 10 + i)
    (root / "logo" / "empty.jpg").write_bytes(b"")
    (root / "no-logo" / "fake.png").write_text("not an image")
    good = root / "logo" / "ok0.jpg"
    (root / "logo" / "cut.jpg").write_bytes(good.read_bytes()[:200])
    (root / "logo" / "readme.txt").write_text("notes")


def test_unreadable_files_are_reported_and_skipped(tmp_path: Path) -> None:
    _dataset_with_bad_files(tmp_path)
    ds = scan_dataset(tmp_path)
    assert [Path(p).name for p, _ in ds.skipped] == ["readme.txt"]
    good, bad = decode_samples(ds.samples, 32)
    assert len(good) == 12
    reasons = {Path(p).name: r for p, r in bad}
    assert set(reasons) == {"empty.jpg", "fake.png", "cut.jpg"}
    assert "empty" in reasons["empty.jpg"] and "not an image" in reasons["fake.png"]
    assert all(d.pixels.shape == (32, 32, 3) for d in good)


def test_cli_data_lists_counts_and_bad_files(tmp_path: Path) -> None:
    _dataset_with_bad_files(tmp_path)
    r = run_cli("data", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "no-logo" in r.stdout and "logo" in r.stdout
    for name in ("empty.jpg", "fake.png", "cut.jpg", "readme.txt"):
        assert name in r.stdout
    assert "4 file(s) skipped" in r.stdout


def test_cli_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    r = run_cli("data", str(tmp_path / "missing"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error:") and "not a folder" in r.stderr


def test_fixture_dataset_has_both_classes_in_every_split_and_whole_scenes(tile_dataset: Path) -> None:
    """The tiles cut from synthetic scenes: both classes in every split, neither swamping the other, and
    all tiles of one scene in one split (no scene leaks from train into val/test)."""
    ds = scan_dataset(tile_dataset)
    counts = ds.counts()
    assert ds.classes == ["no-logo", "demo-logo"]
    sizes = {c: sum(counts[c].values()) for c in ds.classes}
    assert min(sizes.values()) >= 100 and max(sizes.values()) <= 1.5 * min(sizes.values())
    assert all(counts[c][split] > 0 for c in ds.classes for split in ("train", "val", "test"))
    split_of_scene: dict[str, set[str]] = {}
    for s in ds.samples:
        split_of_scene.setdefault(s.path.name.split("_nohash_")[0], set()).add(s.split)
    assert len(split_of_scene) >= 20 and all(len(splits) == 1 for splits in split_of_scene.values())
