"""Shared fixtures: data drawn in code, and one tiny, really trained classifier per session.

The session model is Inception v3 cut at mixed2 (7x7 maps at 80 px), trained from scratch for about a
minute on tiles cut from synthetic scenes of the demo logo: enough to separate the classes and to
place boxes, which an untrained network cannot do.

`make test` runs the suite on two pytest-xdist workers (a file's tests stay on one worker). The session
artefacts are built once for both: the first worker to need one builds it under a file lock in the
run's shared temp folder and the other reuses it (`build_once`), so both test the same model. While
one worker trains it, the other runs the files that need no session model (`pytest_collection_modifyitems`).

`DETECT_TEST_ARTEFACTS=/some/folder` keeps those artefacts there across runs, for iterating on one test
without two minutes of training each time; delete the folder after changing training or synthesis code.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

INPUT = 80  # px: small enough for a fast CPU test, above Inception v3's minimum of 75
CAM_LAYER = "mixed2"


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], Any]) -> Any:
    """`make(folder)`'s value, made once per test run even across xdist workers (pickled beside it)."""
    kept = os.environ.get("DETECT_TEST_ARTEFACTS")
    if not kept and not os.environ.get("PYTEST_XDIST_WORKER"):
        return make(tmp_path_factory.mktemp(name))
    from filelock import FileLock

    root = Path(kept) if kept else tmp_path_factory.getbasetemp().parent / "built-once"
    root.mkdir(parents=True, exist_ok=True)
    folder, value = root / name, root / f"{name}.pickle"
    with FileLock(str(root / f"{name}.lock")):
        if not value.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            value.write_bytes(pickle.dumps(make(folder)))
    return pickle.loads(value.read_bytes())


SESSION_MODEL = {"trained_model", "exported_onnx", "calibrated_model"}
# The files that took longest in `make test` (its --durations; 40-230 s each on two workers), longest
# first: they start early, so that no worker is left with one at the end while the other idles.
LONG_FILES = ("test_scan.py", "test_train.py", "test_ray.py", "test_mining.py", "test_web.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the files so two workers overlap the session model's training (about a third of the run's
    critical path): first one file that needs the model (its worker trains it), then every file that
    needs none (the other worker runs them meanwhile), then the other model files. Within each group the
    long files come first, then those with more tests (`make test` turns xdist's own reordering off)."""
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)

    def needs_model(name: str) -> bool:
        return any(SESSION_MODEL & set(getattr(i, "fixturenames", ())) for i in files[name])

    def cost(name: str) -> tuple[int, int]:
        base = Path(name).name
        return (LONG_FILES.index(base) if base in LONG_FILES else len(LONG_FILES), -len(files[name]))

    ranked = sorted(files, key=cost)
    with_model = [f for f in ranked if needs_model(f)]
    order = with_model[:1] + [f for f in ranked if not needs_model(f)] + with_model[1:]
    items[:] = [i for f in order for i in files[f]]


@pytest.fixture(scope="session")
def tile_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logo/no-logo tile dataset cut from 30 synthetic 320x240 scenes, as `detect synth` cuts it.

    About 150 demo-logo and 120 no-logo tiles, both classes in every split: a fifth of scene_data's
    tiles, so the training tests that only need some real data stay quick."""
    from detector.synth import SceneConfig, SynthConfig, synthesize

    def make(folder: Path) -> Path:
        cfg = SynthConfig(
            out=folder / "synth", scenes=30, seed=3, tile_size=INPUT, scene=SceneConfig(width=320, height=240)
        )
        synthesize(cfg)
        return folder / "synth" / "tiles"

    return build_once(tmp_path_factory, "tiles", make)


@pytest.fixture(scope="session")
def scene_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic 320x240 scenes (boxes in scenes/) and the tiles cut from them (tiles/)."""
    from detector.synth import SceneConfig, SynthConfig, synthesize

    def make(folder: Path) -> Path:
        cfg = SynthConfig(
            out=folder / "synth", scenes=140, seed=11, tile_size=INPUT, scene=SceneConfig(width=320, height=240)
        )
        synthesize(cfg)
        return folder / "synth"

    return build_once(tmp_path_factory, "scenes", make)


@pytest.fixture(scope="session")
def trained_model(scene_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from detector.training import TrainConfig, train

    def make(folder: Path) -> Path:
        cfg = TrainConfig(
            data=str(scene_data / "tiles"),
            out=str(folder / "m"),
            weights="none",
            input_size=INPUT,
            cam_layer=CAM_LAYER,
            fine_tune="all",
            fine_tune_epochs=8,
            patience=8,
            batch_size=16,
            cache_dir=str(folder / "cache"),
            seed=0,
        )
        train(cfg, log=lambda s: None)
        return folder / "m"

    return build_once(tmp_path_factory, "model", make)


@pytest.fixture(scope="session")
def exported_onnx(trained_model: Path, scene_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """The session model exported to fp32 ONNX (parity-checked on held-back tiles of its own data)."""
    from export.onnx_export import export_model

    def make(folder: Path):  # noqa: ANN202 - an ExportReport
        return export_model(trained_model, folder / "model.onnx", data=scene_data / "tiles", log=lambda s: None)

    return build_once(tmp_path_factory, "onnx", make)


@pytest.fixture(scope="session")
def calibrated_model(trained_model: Path, scene_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session model after `detect calibrate` on its validation scenes: the product's flow."""
    from tests.helpers import run_cli

    def make(folder: Path) -> Path:
        model = folder / "m"
        shutil.copytree(trained_model, model)
        r = run_cli("calibrate", str(model), str(scene_data / "scenes"), "--target-precision", "0.9")
        assert r.returncode == 0, r.stderr
        return model

    return build_once(tmp_path_factory, "calibrated", make)
