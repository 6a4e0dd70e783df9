"""What a model directory records besides the weights (model.json): classes, input size, CAM block
and geometry, thresholds and the calibration. Plain data: no Keras needed to read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detector import __version__

BACKBONE = "inception_v3"
MODEL_FILE = "model.keras"
META_FILE = "model.json"
FORMAT = "logo-detector/model@1"
BLOCKS = tuple(f"mixed{i}" for i in range(11))  # Inception v3's blocks, input side first
#: Where CAM cells sit in the input: cell i is centred on pixel offset + stride * i (Inception v3's
#: 'valid' convolutions and poolings). A map must be placed there, not stretched over the whole tile:
#: at 80 px the 7 cells of mixed2 are centred on pixels 13..61, not 6..74.
CAM_GEOMETRY = {
    **{f"mixed{i}": (8, 13) for i in range(3)},
    **{f"mixed{i}": (16, 21) for i in range(3, 8)},
    **{f"mixed{i}": (32, 37) for i in range(8, 11)},
}
PREPROCESSING = "rgb float 0..255 in; x/127.5-1 inside the model (layer 'preprocess')"
MIN_INPUT_SIZE = 75


@dataclass
class ModelMeta:
    """What `model.json` records: everything a runtime needs besides the weights."""

    classes: list[str]
    negative_class: str
    input_size: int
    cam_layer: str
    weights_origin: str
    dropout: float
    bn_momentum: float
    thresholds: dict[str, float] = field(default_factory=dict)  # per tile (the classifier's own input)
    image_thresholds: dict[str, float] = field(default_factory=dict)  # on an image's best tile (`detect calibrate`)
    cam_threshold: float | None = None  # fraction of a tile map's peak that makes a box pixel
    join_cells: float | None = None  # CAM fragments this many map cells apart are one logo
    box_calibration: dict[str, Any] | None = None  # box correction and scorer (detector.pipeline.calibration)
    validation: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    backbone: str = BACKBONE
    preprocessing: str = PREPROCESSING
    format: str = FORMAT
    version: str = __version__

    @property
    def positive_classes(self) -> list[str]:
        return [c for c in self.classes if c != self.negative_class]

    def threshold(self, label: str) -> float:
        return float(self.thresholds.get(label, 0.5))
