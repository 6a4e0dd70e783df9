"""Hard-negative mining and training from an existing model, with the really trained test model."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from detector.backends import open_backend
from detector.data.boxes import read_box_dataset
from detector.data.tilecut import TileRules, classify_tile
from detector.model.store import read_meta
from detector.pipeline.tiling import Tile
from detector.training import TrainConfig, mine_hard_negatives, train
from tests.helpers import run_cli


def _tile_of(name: str, size: int) -> Tile:
    """Parse the window back from a tile file name: ..._s<scale>_x<x>_y<y>.jpg."""
    parts = Path(name).stem.rsplit("_", 3)
    return Tile(float(parts[1][1:]), int(parts[2][1:]), int(parts[3][1:]), size)


def test_mined_windows_are_false_alarms_and_training_on_them_lowers_their_scores(
    trained_model: Path, tile_dataset: Path, tmp_path: Path
) -> None:
    """Mined on the 30 scenes of the small tile set (scenes the session model never saw), added to their
    tiles and trained on."""
    tiles = tmp_path / "tiles"
    shutil.copytree(tile_dataset, tiles)
    backend = open_backend(trained_model)
    meta = backend.meta
    ds = read_box_dataset(tile_dataset.parent / "scenes")
    rep = mine_hard_negatives(backend, ds, tiles, split="all", per_scene=4, progress=False)
    hard = sorted((tiles / meta.negative_class).glob("*_nohash_hard_*.jpg"))
    assert rep.written == len(hard) > 0 and rep.false_windows >= rep.written

    # Each written window touches no logo box of its scene, and the model called it a logo.
    by_stem = {Path(r.file).with_suffix("").as_posix(): r for r in ds.images}
    pixels = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in hard])
    for p in hard[:20]:
        rec = by_stem[p.name.split("_nohash_")[0]]
        assert classify_tile(_tile_of(p.name, meta.input_size), rec.boxes, TileRules(size=meta.input_size)) is None
    before = backend.predict(pixels).probs[:, 1]
    assert (before >= meta.threshold("demo-logo") - 0.02).mean() > 0.9  # JPEG re-encoding moves a few a little

    out = tmp_path / "retrained"
    train(
        TrainConfig(
            data=str(tiles),
            out=str(out),
            weights="none",
            init=str(trained_model),
            fine_tune="all",
            fine_tune_epochs=2,
            patience=2,
            batch_size=16,
            cache_dir=str(tmp_path / "cache"),
        ),
        log=lambda s: None,
    )
    after = open_backend(out).predict(pixels).probs[:, 1]
    print(f"{len(hard)} hard negatives: mean logo probability {before.mean():.3f} -> {after.mean():.3f}")
    assert after.mean() < before.mean() - 0.1
    new_meta = read_meta(out)
    assert new_meta.weights_origin.startswith("init:") and new_meta.cam_layer == meta.cam_layer


def test_init_with_other_classes_is_a_clear_error(trained_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    for cls in ("no-logo", "acme", "other"):
        (data / cls).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(data / cls / f"{i}.jpg"), np.full((80, 80, 3), 40 * i, np.uint8))
    proc = run_cli("train", str(data), "--out", str(tmp_path / "m"), "--weights", "none", "--init", str(trained_model))
    assert proc.returncode == 2 and "differ from the data's" in proc.stderr
