"""The model and its directory: building, weights files, ImageNet failure, damaged directories, and what
the session model learned and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.data.folders import decode_samples, scan_dataset
from detector.errors import ModelDirError, WeightsError
from detector.model.network import feature_extractor, new_model
from detector.model.predict import predict_batches
from detector.model.store import load_model_dir, read_meta
from detector.training import TrainConfig
from tests.conftest import CAM_LAYER, INPUT
from tests.helpers import run_cli


def _pixels(n: int = 4, size: int = 75, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def test_head_sits_on_the_chosen_block() -> None:
    m7, meta = new_model(["no-logo", "logo"], "no-logo", weights="none", input_size=96, cam_layer="mixed7")
    assert meta.cam_layer == "mixed7" and meta.bn_momentum == 0.9  # from scratch: below Keras's 0.99
    assert m7.get_layer("backbone").output.shape[1:] == (None, None, 768)  # mixed7 has 768 channels
    assert m7.get_layer("logits").get_config()["activation"] == "linear"
    assert m7.output_shape == (None, 2)
    probs = m7(_pixels(2, 96)).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("size,layer", [(60, "mixed10"), (96, "mixed11"), (96, "conv2d")])
def test_bad_build_arguments(size: int, layer: str) -> None:
    with pytest.raises(ModelDirError):
        new_model(["no-logo", "logo"], "no-logo", weights="none", input_size=size, cam_layer=layer)


def test_weights_from_a_file_give_identical_outputs(tmp_path: Path) -> None:
    """Save perturbed backbone weights, rebuild from the file: features must match to the bit."""
    model, _ = new_model(["no-logo", "logo"], "no-logo", weights="none", input_size=75, cam_layer="mixed10")
    rng = np.random.default_rng(1)
    for w in model.get_layer("backbone").weights:  # move away from the seeded initial values
        w.assign(w.numpy() + rng.normal(0, 0.05, w.shape).astype(np.float32))
    path = tmp_path / "inception.weights.h5"
    model.get_layer("backbone").save_weights(path)
    x = _pixels(6)
    want = feature_extractor(model)(x).numpy()
    assert want.std(axis=0).mean() > 1e-3  # features differ per input: a real comparison

    for layer in ("mixed10", "mixed7"):
        again, meta = new_model(["no-logo", "logo"], "no-logo", weights=str(path), input_size=75, cam_layer=layer)
        assert meta.weights_origin.startswith("file:inception.weights.h5")
        got = feature_extractor(again)(x).numpy()
        if layer == "mixed10":
            np.testing.assert_array_equal(got, want)
        else:
            ref = model.get_layer("backbone").get_layer("mixed7").output  # same layer inside the original
            import keras

            sub = keras.Model(model.get_layer("backbone").input, ref)
            np.testing.assert_allclose(got, sub(x / 127.5 - 1).numpy().mean(axis=(1, 2)), atol=1e-5)
    fresh, _ = new_model(["no-logo", "logo"], "no-logo", weights="none", input_size=75, cam_layer="mixed10")
    assert np.abs(feature_extractor(fresh)(x).numpy() - want).max() > 1e-3


def test_missing_weights_file() -> None:
    with pytest.raises(WeightsError, match="no such file"):
        new_model(["no-logo", "logo"], "no-logo", weights="/nonexistent/w.h5", input_size=75)


def test_imagenet_download_failure_names_weights_path(tmp_path: Path, tile_dataset: Path) -> None:
    """No network here: the real Keras download path must fail with an actionable one-liner."""
    env = {"KERAS_HOME": str(tmp_path / "keras"), "HOME": str(tmp_path)}
    r = run_cli(
        "train", str(tile_dataset), "--out", str(tmp_path / "m"), "--input-size", "75", "--weights", "imagenet", env=env
    )
    if r.returncode == 0:
        pytest.skip("this machine could download the ImageNet weights")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    last = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert last and "--weights PATH" in r.stderr and "ImageNet" in last[0]


def test_damaged_and_foreign_model_dirs(tmp_path: Path, trained_model: Path) -> None:
    with pytest.raises(ModelDirError, match="no such model directory"):
        read_meta(tmp_path / "nothing")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "model.keras").write_bytes(b"x")
    (foreign / "model.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelDirError, match="not a logo-detector model"):
        read_meta(foreign)
    (foreign / "model.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="damaged"):
        read_meta(foreign)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text((trained_model / "model.json").read_text())
    data = (trained_model / "model.keras").read_bytes()
    (broken / "model.keras").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelDirError, match="cannot load"):
        load_model_dir(broken)
    r = run_cli("evaluate", str(broken), str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "error:" in r.stderr


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


def test_recipe_of_a_continued_model_is_its_own(trained_model: Path) -> None:
    """--init continues a model at its own input size and block, whatever --weights says."""
    from detector.training import with_recipe_defaults

    cont = with_recipe_defaults(TrainConfig(data="d", out="o", init=str(trained_model)))  # weights: imagenet
    assert (cont.input_size, cont.cam_layer, cont.fine_tune) == (INPUT, CAM_LAYER, None)
