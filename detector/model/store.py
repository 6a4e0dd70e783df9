"""Save and load a model directory: the Keras file, model.json, and the model's content hash."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.data.folders import file_sha256
from detector.errors import ModelDirError
from detector.model.meta import FORMAT, META_FILE, MODEL_FILE, ModelMeta

if TYPE_CHECKING:
    import keras


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def save_model_dir(model: keras.Model, meta: ModelMeta, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (MODEL_FILE + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, out / MODEL_FILE)
    write_json_atomic(out / META_FILE, asdict(meta))
    return out


def read_meta(model_dir: str | Path) -> ModelMeta:
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelDirError(f"{d}: no such model directory (train one with `detect train`)")
    meta_path = d / META_FILE
    if not meta_path.is_file() or not (d / MODEL_FILE).is_file():
        raise ModelDirError(f"{d}: not a logo-detector model directory (needs {MODEL_FILE} and {META_FILE})")
    try:
        data = json.loads(meta_path.read_text())
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON or not UTF-8
        raise ModelDirError(f"{meta_path}: damaged ({str(e)[:200]})") from None
    if not isinstance(data, dict):
        raise ModelDirError(f"{meta_path}: not a logo-detector model (a JSON {type(data).__name__}, not an object)")
    if data.get("format") != FORMAT:
        raise ModelDirError(f"{meta_path}: not a logo-detector model (format {data.get('format')!r})")
    known = set(ModelMeta.__dataclass_fields__)
    try:
        return ModelMeta(**{k: v for k, v in data.items() if k in known})
    except TypeError as e:
        raise ModelDirError(f"{meta_path}: missing fields ({e})") from None


def update_meta(model_dir: str | Path, **changes: Any) -> ModelMeta:
    meta = read_meta(model_dir)
    for k, v in changes.items():
        setattr(meta, k, v)
    write_json_atomic(Path(model_dir) / META_FILE, asdict(meta))
    return meta


def load_model_dir(model_dir: str | Path) -> tuple[keras.Model, ModelMeta]:
    """Load with Keras safe_mode: a model directory never runs code it carries. The directory is
    checked (read_meta) before Keras is imported, so a wrong path is a quick one-line error."""
    meta = read_meta(model_dir)
    import keras

    path = Path(model_dir) / MODEL_FILE
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:
        text = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise ModelDirError(f"{path}: cannot load ({text[:200]})") from None
    if model.output_shape[-1] != len(meta.classes):
        raise ModelDirError(
            f"{model_dir}: model has {model.output_shape[-1]} outputs but {META_FILE} lists {len(meta.classes)} classes"
        )
    return model, meta


def model_sha256(model_dir: str | Path) -> str:
    return file_sha256(Path(model_dir) / MODEL_FILE)
