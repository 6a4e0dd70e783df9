"""The classifier a run starts from: a new network, a trained model to continue (`init`), or, when a
killed run resumes, the model its phase started from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.data.folders import Dataset
from detector.errors import DatasetError
from detector.model.meta import ModelMeta
from detector.model.network import new_model

if TYPE_CHECKING:
    import keras

    from detector.training.config import TrainConfig


def fresh_model(cfg: TrainConfig, ds: Dataset, input_size: int) -> tuple[keras.Model, ModelMeta]:
    """A new classifier for the dataset's classes, with the config's weights, block, dropout and BatchNorm."""
    return new_model(
        ds.classes, ds.negative_class, cfg.weights, input_size, cfg.cam_layer, cfg.dropout, cfg.bn_momentum
    )


def init_from(model_dir: str, ds: Dataset) -> tuple[keras.Model, ModelMeta]:
    """A trained model to continue from: same classes, its input size and CAM layer; thresholds redone."""
    from detector.model.store import load_model_dir, model_sha256

    classifier, old = load_model_dir(model_dir)
    if old.classes != ds.classes:
        raise DatasetError(f"init {model_dir}: its classes {old.classes} differ from the data's {ds.classes}")
    meta = ModelMeta(
        classes=old.classes,
        negative_class=old.negative_class,
        input_size=old.input_size,
        cam_layer=old.cam_layer,
        weights_origin=f"init:{Path(model_dir).name}:sha256={model_sha256(model_dir)[:16]}",
        dropout=old.dropout,
        bn_momentum=old.bn_momentum,
    )
    return classifier, meta


def resumed_meta(ds: Dataset, config: dict[str, Any]) -> ModelMeta:
    """The meta of a resumed run's new model, from the config the run started with (not today's flags)."""
    from detector.model.network import weights_origin

    origin = weights_origin(config["weights"])
    bn = config.get("bn_momentum") or (0.9 if origin == "none" else 0.99)
    return ModelMeta(
        classes=ds.classes,
        negative_class=ds.negative_class,
        input_size=config["input_size"],
        cam_layer=config["cam_layer"],
        weights_origin=origin,
        dropout=config["dropout"],
        bn_momentum=bn,
    )
