"""Training for real: a tiny Inception v3 learns the demo logo; cache, resume, fine-tune, balance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from detector.data.folders import decode_samples, scan_dataset
from detector.model.network import new_model
from detector.model.predict import predict_batches
from detector.model.store import load_model_dir, read_meta
from detector.options import OptionError, declared
from detector.training import TrainConfig, set_trainable_blocks, train
from detector.training.balance import class_weights, upsample
from tests.conftest import INPUT
from tests.helpers import ROOT


def test_bottleneck_cache_skips_the_backbone_on_a_second_run(tile_dataset: Path, tmp_path: Path) -> None:
    common = dict(
        data=str(tile_dataset),
        weights="none",
        input_size=INPUT,
        cam_layer="mixed2",
        head_steps=60,
        cache_dir=str(tmp_path / "cache"),
        seed=7,
    )
    first = train(TrainConfig(out=str(tmp_path / "a"), dropout=0.5, **common), log=lambda s: None)
    second = train(TrainConfig(out=str(tmp_path / "b"), dropout=0.2, balance="upsample", **common), log=lambda s: None)
    n = first.features_computed
    assert n > 100 and first.features_cached == 0
    assert second.features_computed == 0 and second.features_cached == n
    files = list((tmp_path / "cache").rglob("*.npy"))
    assert len(files) == n and all(np.load(f, allow_pickle=False).shape == (288,) for f in files[:5])
    other_seed = train(TrainConfig(out=str(tmp_path / "c"), **{**common, "seed": 8}), log=lambda s: None)
    assert other_seed.features_computed == n  # a different random backbone never hits the cache


def test_fine_tune_top_blocks_with_distortions_and_tensorboard(tile_dataset: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(
        data=str(tile_dataset),
        out=str(tmp_path / "m"),
        weights="none",
        input_size=INPUT,
        cam_layer="mixed2",
        head_steps=20,
        fine_tune="1",
        fine_tune_epochs=1,
        random_crop=10,
        random_scale=10,
        random_brightness=20,
        random_color=20,
        flip_left_right=True,
        logdir=str(tmp_path / "tb"),
        cache_dir=str(tmp_path / "cache"),
    )
    result = train(cfg, log=lambda s: None)
    assert [p["phase"] for p in result.phases] == ["head", "fine_tune"]
    # The head trains on cached features; the distortions apply where pixels go through the network.
    assert result.features_computed > 0 and result.phases[0]["train_accuracy"] > 0
    assert list((tmp_path / "tb" / "head").rglob("events.out.tfevents*"))
    assert list((tmp_path / "tb" / "fine_tune").rglob("events.out.tfevents*"))
    assert read_meta(tmp_path / "m").cam_layer == "mixed2"


def test_set_trainable_blocks_unfreezes_only_the_top() -> None:
    import keras

    model, _ = new_model(["no-logo", "logo"], "no-logo", weights="none", input_size=INPUT, cam_layer="mixed7")
    set_trainable_blocks(model, "2", train_batchnorm=False)
    layers = model.get_layer("backbone").layers
    names = [layer.name for layer in layers]
    boundary = names.index("mixed5")
    assert not any(layer.trainable for layer in layers[: boundary + 1])
    top = layers[boundary + 1 :]
    assert any(layer.trainable for layer in top if isinstance(layer, keras.layers.Conv2D))
    assert not any(layer.trainable for layer in top if isinstance(layer, keras.layers.BatchNormalization))
    set_trainable_blocks(model, "all", train_batchnorm=True)
    assert all(layer.trainable for layer in layers)


def test_balance_helpers() -> None:
    y = np.array([0] * 30 + [1] * 10)
    idx = upsample(y, seed=0)
    assert np.bincount(y[idx]).tolist() == [30, 30]
    w = class_weights(y, 2)
    assert w[1] == pytest.approx(3 * w[0])


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"head_steps": 0}, "head_steps"),
        ({"balance": "oversample"}, "balance"),
        ({"fine_tune": "twelve"}, "fine_tune"),
        ({"fine_tune": "12"}, "fine_tune"),
        ({"input_size": 60}, "input_size"),
        ({"cam_layer": "mixed11"}, "cam_layer"),
        ({"dropout": 1.0}, "dropout"),
        ({"random_color": 150.0}, "random_color"),
        ({"val_percent": 60.0, "test_percent": 40.0}, "val_percent"),
        ({"data": []}, "data"),
    ],
)
def test_config_checks_name_the_option_not_a_flag(changes: dict, option: str) -> None:
    with pytest.raises(OptionError) as e:
        TrainConfig(**{"data": "d", "out": "o", **changes})
    assert e.value.option == option and str(e.value).startswith(option + " ") and "--" not in str(e.value)


def test_config_normalizes_and_declares_every_field() -> None:
    cfg = TrainConfig("d", out="o", fine_tune=2, random_crop=10)
    assert cfg.data == ["d"] and cfg.fine_tune == "2" and cfg.random_crop == 10.0
    assert TrainConfig(["a", Path("b")], out="o").data == ["a", "b"]
    names = [d.name for d in declared(TrainConfig)]
    assert names == list(TrainConfig.__dataclass_fields__)  # every field is a declared option
    off_cli = {d.name for d in declared(TrainConfig) if not d.spec.cli}
    assert off_cli == {"val_percent", "test_percent", "bn_momentum"}


def test_config_import_stays_light() -> None:
    """The CLI reads TrainConfig at start-up: that must not pull in scikit-learn, TensorFlow or the scanner."""
    code = (
        "import sys, detector.training.config, detector.training as t; t.TrainConfig; "
        "print(sorted(m for m in ('sklearn', 'tensorflow', 'keras', 'detector.pipeline.scan') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def _state(out: Path) -> dict | None:
    try:
        return json.loads((out / ".train" / "state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def test_resume_after_sigkill_mid_epoch(tile_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    args = [
        sys.executable,
        str(ROOT / "cli.py"),
        "train",
        str(tile_dataset),
        "--out",
        str(out),
        "--weights",
        "none",
        "--input-size",
        str(INPUT),
        "--cam-layer",
        "mixed2",
        "--fine-tune",
        "all",
        "--fine-tune-epochs",
        "3",
        "--patience",
        "10",
        "--batch-size",
        "8",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        st = _state(out)
        if st and st["phase"] == "fine_tune" and st["epoch"] >= 1:
            break
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        time.sleep(0.2)
    else:
        pytest.fail("training never finished its first epoch")
    time.sleep(1.0)  # well inside epoch 2 (an epoch takes several seconds here)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _state(out)["epoch"]
    assert 1 <= killed_at < 3 and not (out / "model.json").exists()

    done = subprocess.run(args + ["--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming: phase fine_tune, {killed_at} epoch(s) done" in done.stderr
    assert f"Epoch {killed_at + 1}/3" in done.stdout and "Epoch 1/3" not in done.stdout
    meta = read_meta(out)
    assert meta.validation["phases"] == [
        {"phase": "fine_tune", "epochs": 3, "best_val_ap": meta.validation["phases"][0]["best_val_ap"]}
    ]
    load_model_dir(out)


def _toy_textures(root: Path, classes: int = 6, per_class: int = 36, size: int = 96) -> Path:
    """A separable toy set: each class a hue, every image its own noise texture and brightness."""
    import cv2

    rng = np.random.default_rng(5)
    for c in range(classes):
        d = root / ("no-logo" if c == 0 else f"class{c}")
        d.mkdir(parents=True)
        for i in range(per_class):
            hsv = np.empty((size, size, 3), np.uint8)
            hsv[..., 0] = (c * 180 // classes + rng.integers(-6, 7, (size, size))) % 180
            hsv[..., 1] = rng.integers(120, 256, (size, size))
            hsv[..., 2] = np.clip(rng.normal(rng.uniform(90, 220), 30, (size, size)), 0, 255)
            cv2.imwrite(str(d / f"img{c}_{i}.png"), cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))
    return root


def _pretrained_style_weights(path: Path, images: Path) -> Path:
    """An Inception v3 no-top weights file with real BatchNorm statistics (one pass in training mode
    over the toy images), saved where `--weights PATH` loads it as it would load Keras's ImageNet file.
    Random convolutions with the statistics of real inputs give features that differ per input."""
    import cv2
    import keras

    base = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(None, None, 3))
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    files = sorted(images.rglob("*.png"))[::4]
    batch = np.stack([cv2.resize(cv2.imread(str(f))[..., ::-1], (INPUT, INPUT)) for f in files]).astype(np.float32)
    base(batch / 127.5 - 1.0, training=True)
    base.save_weights(path)
    return path


def test_pretrained_style_head_converges_within_the_default_budget(tmp_path: Path) -> None:
    data = _toy_textures(tmp_path / "toy")
    weights = _pretrained_style_weights(tmp_path / "backbone.weights.h5", data)
    cfg = TrainConfig(
        data=str(data),
        out=str(tmp_path / "m"),
        weights=str(weights),
        input_size=INPUT,
        cam_layer="mixed2",
        fine_tune="none",  # the head alone: what this test judges
        cache_dir=str(tmp_path / "cache"),
    )
    assert cfg.head_steps == TrainConfig.__dataclass_fields__["head_steps"].default  # the default budget
    result = train(cfg, log=lambda s: None)
    head = result.phases[0]
    assert head["phase"] == "head" and head["train_accuracy"] >= 0.95, head
    assert result.meta.weights_origin.startswith("file:backbone.weights.h5")
    # The folded standardization leaves a plain linear head: the saved classifier agrees with itself.
    model, meta = load_model_dir(tmp_path / "m")
    ds = scan_dataset(data)
    decoded, _ = decode_samples(ds.in_split("train"), INPUT)
    probs = predict_batches(model, np.stack([d.pixels for d in decoded]))
    y = np.array([meta.classes.index(d.sample.label) for d in decoded])
    assert np.mean(probs.argmax(1) == y) >= 0.95


def test_recipe_defaults_follow_the_weights(tmp_path: Path) -> None:
    from detector.training import RECIPES, with_recipe_defaults

    weights = tmp_path / "w.h5"
    weights.write_bytes(b"x")
    pre = with_recipe_defaults(TrainConfig(data="d", out="o", weights=str(weights)))
    assert (pre.input_size, pre.cam_layer, pre.fine_tune, pre.fine_tune_epochs) == (224, "mixed6", "2", 3)
    assert pre.distort and pre.random_color == RECIPES["pretrained"]["distortions"]["random_color"]
    mine = with_recipe_defaults(TrainConfig(data="d", out="o", weights=str(weights), fine_tune="none", random_crop=5))
    assert mine.fine_tune is None and mine.random_crop == 5 and mine.random_color == 0.0
    scratch = with_recipe_defaults(TrainConfig(data="d", out="o", weights="none"))
    assert (scratch.input_size, scratch.cam_layer, scratch.fine_tune, scratch.distort) == (128, "mixed2", None, False)
