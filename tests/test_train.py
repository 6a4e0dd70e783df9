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

from detector.data import decode_samples, scan_dataset
from detector.model import load_model_dir, new_model, read_meta
from detector.predict import predict_batches
from detector.train import TrainConfig, _class_weights, _upsample, set_trainable_blocks, train
from tests.conftest import CAM_LAYER, INPUT
from tests.helpers import ROOT


def test_trained_model_separates_logo_from_no_logo(trained_model: Path, scene_data: Path) -> None:
    model, meta = load_model_dir(trained_model)
    ds = scan_dataset(scene_data / "tiles")
    decoded, _ = decode_samples(ds.in_split("test") + ds.in_split("val"), meta.input_size)
    probs = predict_batches(model, np.stack([d.pixels for d in decoded]))
    y = np.array([meta.classes.index(d.sample.label) for d in decoded])
    p_logo = probs[:, meta.classes.index("demo-logo")]
    assert p_logo[y == 1].mean() - p_logo[y == 0].mean() > 0.3
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y == 1, p_logo) > 0.85


def test_model_json_records_what_runtimes_need(trained_model: Path) -> None:
    meta = json.loads((trained_model / "model.json").read_text())
    assert meta["classes"] == ["no-logo", "demo-logo"] and meta["negative_class"] == "no-logo"
    assert meta["input_size"] == INPUT and meta["cam_layer"] == CAM_LAYER and meta["backbone"] == "inception_v3"
    assert meta["weights_origin"] == "none" and "127.5" in meta["preprocessing"]
    assert 0 < meta["thresholds"]["demo-logo"] < 1
    assert len(meta["data_fingerprint"]) == 64 and meta["version"]
    assert meta["validation"]["phases"][0]["phase"] == "fine_tune"
    assert not (trained_model / ".train").exists()  # checkpoints are cleaned up after a finished run


def test_bottleneck_cache_skips_the_backbone_on_a_second_run(tile_dataset: Path, tmp_path: Path) -> None:
    common = dict(
        data=str(tile_dataset),
        weights="none",
        input_size=INPUT,
        cam_layer="mixed2",
        epochs=3,
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
        epochs=1,
        fine_tune="1",
        fine_tune_epochs=1,
        random_crop=10,
        random_scale=10,
        random_brightness=20,
        flip_left_right=True,
        logdir=str(tmp_path / "tb"),
        cache_dir=str(tmp_path / "cache"),
    )
    result = train(cfg, log=lambda s: None)
    assert [p["phase"] for p in result.phases] == ["head", "fine_tune"]
    assert result.features_computed == 0  # distortions bypass the cache
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
    idx = _upsample(y, seed=0)
    assert np.bincount(y[idx]).tolist() == [30, 30]
    w = _class_weights(y, 2)
    assert w[1] == pytest.approx(3 * w[0])


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
        "4",
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
    assert 1 <= killed_at < 4 and not (out / "model.json").exists()

    done = subprocess.run(args + ["--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming: phase fine_tune, {killed_at} epoch(s) done" in done.stderr
    assert f"Epoch {killed_at + 1}/4" in done.stdout and "Epoch 1/4" not in done.stdout
    meta = read_meta(out)
    assert meta.validation["phases"] == [
        {"phase": "fine_tune", "epochs": 4, "best_val_ap": meta.validation["phases"][0]["best_val_ap"]}
    ]
    load_model_dir(out)
