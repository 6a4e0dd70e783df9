"""Shared fixtures: datasets drawn in code and one tiny, really trained classifier per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TILE = 80  # px: small enough for a fast CPU test, above Inception v3's minimum of 75
INPUT = 75


@pytest.fixture(scope="session")
def tile_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logo/no-logo dataset drawn with OpenCV: the demo mark on photos vs. random shapes and text."""
    from detector.synth import TileSpec, write_tile_dataset

    root = tmp_path_factory.mktemp("tiles")
    return write_tile_dataset(root / "data", per_class=90, spec=TileSpec(size=TILE, min_fraction=0.45), seed=3)


@pytest.fixture(scope="session")
def trained_model(tile_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights none, trained from scratch for a few epochs: enough to separate the classes."""
    from detector.train import TrainConfig, train

    out = tmp_path_factory.mktemp("model") / "m"
    cfg = TrainConfig(
        data=str(tile_dataset),
        out=str(out),
        weights="none",
        input_size=INPUT,
        cam_layer="mixed7",
        fine_tune="all",
        fine_tune_epochs=6,
        patience=6,
        batch_size=16,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        seed=0,
    )
    train(cfg, log=lambda s: None)
    return out
