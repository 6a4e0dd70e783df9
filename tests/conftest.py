"""Shared fixtures: data drawn in code, and one tiny, really trained classifier per session.

The session model is Inception v3 cut at mixed2 (7x7 maps at 80 px), trained from scratch for about a
minute on tiles cut from synthetic scenes of the demo logo: enough to separate the classes and to
place boxes, which an untrained network cannot do.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

INPUT = 80  # px: small enough for a fast CPU test, above Inception v3's minimum of 75
CAM_LAYER = "mixed2"


@pytest.fixture(scope="session")
def tile_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logo/no-logo tile dataset cut from 30 synthetic 320x240 scenes, as `detect synth` cuts it.

    About 150 demo-logo and 120 no-logo tiles, both classes in every split: a fifth of scene_data's
    tiles, so the training tests that only need some real data stay quick."""
    from detector.synth import SceneConfig, SynthConfig, synthesize

    out = tmp_path_factory.mktemp("tiles") / "synth"
    synthesize(SynthConfig(out=out, scenes=30, seed=3, tile_size=INPUT, scene=SceneConfig(width=320, height=240)))
    return out / "tiles"


@pytest.fixture(scope="session")
def scene_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic 320x240 scenes (boxes in scenes/) and the tiles cut from them (tiles/)."""
    from detector.synth import SceneConfig, SynthConfig, synthesize

    out = tmp_path_factory.mktemp("scenes") / "synth"
    synthesize(SynthConfig(out=out, scenes=140, seed=11, tile_size=INPUT, scene=SceneConfig(width=320, height=240)))
    return out


@pytest.fixture(scope="session")
def trained_model(scene_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from detector.training import TrainConfig, train

    out = tmp_path_factory.mktemp("model") / "m"
    cfg = TrainConfig(
        data=str(scene_data / "tiles"),
        out=str(out),
        weights="none",
        input_size=INPUT,
        cam_layer=CAM_LAYER,
        fine_tune="all",
        fine_tune_epochs=8,
        patience=8,
        batch_size=16,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        seed=0,
    )
    train(cfg, log=lambda s: None)
    return out


@pytest.fixture(scope="session")
def exported_onnx(trained_model: Path, scene_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """The session model exported to fp32 ONNX (parity-checked on held-back tiles of its own data)."""
    from export.onnx_export import export_model

    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    report = export_model(trained_model, out, data=scene_data / "tiles", log=lambda s: None)
    return report


@pytest.fixture(scope="session")
def calibrated_model(trained_model: Path, scene_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session model after `detect calibrate` on its validation scenes: the product's flow."""
    import shutil

    from tests.helpers import run_cli

    model = tmp_path_factory.mktemp("calibrated") / "m"
    shutil.copytree(trained_model, model)
    r = run_cli("calibrate", str(model), str(scene_data / "scenes"), "--target-precision", "0.9")
    assert r.returncode == 0, r.stderr
    return model
