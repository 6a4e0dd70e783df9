"""Keras model directory -> one self-describing `.onnx` file (fp32, fp16 or int8), checked against Keras.

The route is tf2onnx's `from_function` with an explicit input signature (the reliable one for Keras 3):
the same `cam_forward` graph the Keras backend runs, with a dynamic batch, height and width, so tiles
and whole images (dense scanning) go through the same file. Output names are set here, never taken
from the converter, and the file carries the model's metadata (see `detector.backends.onnx_meta`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.backends.onnx_meta import INPUT, OUTPUTS, metadata_props
from detector.errors import DetectorError
from detector.model.meta import ModelMeta

PRECISIONS = ("none", "fp16", "int8", "auto")
#: `--quantize auto` keeps int8 only where it agrees with Keras on this many of the held-back tile
#: verdicts and is faster on this machine: int8 measured 2.47x fp32 on one AMD EPYC and 0.93x on a
#: newer one of the same family, so the choice is timed where the file is made, not fixed.
AUTO_MIN_AGREEMENT = 0.99
DEFAULT_OPSET = 17
FP32_PROB_TOLERANCE = 1e-4
FP32_CAM_CORRELATION = 0.999


@dataclass
class Agreement:
    """How one ONNX file compares with the Keras model on the same tiles."""

    precision: str
    tiles: int
    max_abs_prob: float
    cam_correlation: float
    verdict_agreement: float
    ms_per_tile: float

    def as_dict(self) -> dict[str, float | int | str]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class ExportReport:
    path: Path
    precision: str
    seconds: float
    size_bytes: int
    checks: list[Agreement] = field(default_factory=list)  # fp32 first, then the quantized file
    choice: dict[str, float | str] = field(default_factory=dict)  # --quantize auto: timings and the pick


def convert(model, meta: ModelMeta, opset: int = DEFAULT_OPSET):
    """tf2onnx conversion of `cam_forward` -> an onnx.ModelProto with inputs/outputs named by the contract."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    from detector.backends.keras_backend import cam_forward

    forward = cam_forward(model)
    spec = (tf.TensorSpec((None, None, None, 3), tf.float32, name=INPUT),)
    fn = tf.function(lambda pixels: forward(pixels), input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    graph = proto.graph
    _rename_value(graph, graph.input[0].name, INPUT)
    for out, name in zip(list(graph.output), OUTPUTS, strict=True):  # tuple outputs keep their order
        _rename_value(graph, out.name, name)
    onnx.checker.check_model(proto)
    return proto


def _rename_value(graph, old: str, new: str) -> None:
    if old == new:
        return
    for node in graph.node:
        node.input[:] = [new if x == old else x for x in node.input]
        node.output[:] = [new if x == old else x for x in node.output]
    for v in list(graph.input) + list(graph.output) + list(graph.value_info):
        if v.name == old:
            v.name = new


def set_metadata(proto, meta: ModelMeta, kernel: np.ndarray, bias: np.ndarray, source_sha: str, precision: str):
    del proto.metadata_props[:]
    for k, v in metadata_props(meta, kernel, bias, source_sha, precision).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "logo-detector"
    proto.doc_string = "logo-detector classifier: probs, per-location class logits (cam) and features"


def to_fp16(proto):
    """Weights and arithmetic in float16; inputs and outputs stay float32 so callers do not change."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(proto, keep_io_types=True)


def cpu_has_int8_dot() -> bool:
    """Whether this CPU has 8-bit dot-product instructions (x86 VNNI, ARM dotprod)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # not Linux: assume a current CPU (full-range weights, as onnxruntime defaults)
    flags = set(text.split())
    return bool(flags & {"avx512_vnni", "avx_vnni", "asimddp"})


def to_int8(fp32_path: Path, out: Path, calibration: np.ndarray, reduce_range: bool | None = None) -> None:
    """Static QDQ int8 (per-channel weights, uint8 activations), calibrated on real tiles.

    Dynamic quantization is several times slower than fp32 for CNNs on onnxruntime (STACK-NOTES);
    static QDQ lets it fuse int8 convolutions. The CAM head stays fp32: it is tiny and the maps are the
    product. On a CPU without 8-bit dot products (AVX2 only) onnxruntime's u8s8 kernels can saturate,
    so the weights use 7 bits there (`reduce_range`, onnxruntime's advice): measured on the test model
    on an AVX2-only EPYC, max |dprob| vs Keras 0.33 with 8-bit weights.
    """
    reduce_range = (not cpu_has_int8_dot()) if reduce_range is None else reduce_range
    import logging

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Tiles(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(calibration.astype(np.float32), max(1, len(calibration) // 16)))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: batch}

    head = _head_nodes(onnx.load(str(fp32_path)))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's "consider pre-processing" notes go to the root logger
    try:
        quantize_static(
            str(fp32_path),
            str(out),
            Tiles(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=head,
        )
    finally:
        root.setLevel(level)


def _head_nodes(proto) -> list[str]:
    """The nodes after the feature map: the 1x1 head, the spatial mean and the softmax."""
    producers = {o: n for n in proto.graph.node for o in n.output}

    def ancestors(outputs: list[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(outputs)
        while stack:
            n = producers.get(stack.pop())
            if n is not None and n.name not in seen:
                seen.add(n.name)
                stack.extend(n.input)
        return seen

    return sorted(ancestors(["probs", "cam"]) - ancestors(["features"]))


def compare(
    keras_out: tuple[np.ndarray, np.ndarray], path: Path, tiles: np.ndarray, meta: ModelMeta, precision: str
) -> Agreement:
    """ONNX (through the real backend) against Keras: probabilities, CAMs, and the tile verdicts."""
    from detector.backends.onnx_backend import OnnxBackend
    from detector.evaluation.metrics import decide

    backend = OnnxBackend(path)
    t0 = time.perf_counter()
    outs = [backend.predict(tiles[i : i + 16]) for i in range(0, len(tiles), 16)]
    ms = (time.perf_counter() - t0) * 1e3 / max(len(tiles), 1)
    probs = np.concatenate([o.probs for o in outs])
    cams = np.concatenate([o.cams for o in outs])
    k_probs, k_cams = keras_out
    verdict_k = decide(k_probs, meta.classes, meta.negative_class, meta.thresholds)
    verdict_o = decide(probs, meta.classes, meta.negative_class, meta.thresholds)
    corr = float(np.corrcoef(k_cams.ravel(), cams.ravel())[0, 1])
    return Agreement(
        precision=precision,
        tiles=len(tiles),
        max_abs_prob=float(np.abs(k_probs - probs).max()),
        cam_correlation=corr,
        verdict_agreement=float(np.mean(verdict_k == verdict_o)),
        ms_per_tile=ms,
    )


def ms_per_tile(path: Path, tiles: np.ndarray, batch: int = 8, repeats: int = 3) -> float:
    """Milliseconds per tile of an ONNX file through the real backend: one warm-up call, then the best of
    `repeats` passes (other load on the machine only ever adds time)."""
    from detector.backends.onnx_backend import OnnxBackend

    backend = OnnxBackend(path)
    backend.predict(tiles[:batch])
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(tiles), batch):
            backend.predict(tiles[i : i + batch])
        best = min(best, time.perf_counter() - t0)
    return best * 1e3 / max(len(tiles), 1)


def pick_precision(fp32_path: Path, int8_path: Path, int8: Agreement, tiles: np.ndarray) -> dict[str, float | str]:
    """int8 if it agrees (>= AUTO_MIN_AGREEMENT of the verdicts) and runs faster here, else fp32."""
    t32, t8 = ms_per_tile(fp32_path, tiles), ms_per_tile(int8_path, tiles)
    agrees = int8.verdict_agreement >= AUTO_MIN_AGREEMENT
    pick = "int8" if agrees and t8 < t32 else "fp32"
    why = (
        f"int8 {t32 / t8:.2f}x fp32 on this machine, verdicts {int8.verdict_agreement:.2%} agree"
        if pick == "int8"
        else (f"int8 verdicts agree only {int8.verdict_agreement:.2%}" if not agrees else f"int8 {t32 / t8:.2f}x fp32")
    )
    return {"precision": pick, "fp32_ms_per_tile": round(t32, 3), "int8_ms_per_tile": round(t8, 3), "why": why}


def export_model(
    model_dir: str | Path,
    out: str | Path,
    opset: int = DEFAULT_OPSET,
    quantize: str = "none",
    data: str | Path | None = None,
    check: bool = True,
    calibration_tiles: int = 256,
    check_tiles: int = 128,
    log: Callable[[str], None] = print,
) -> ExportReport:
    """Convert, write metadata, check fp32 parity, and quantize (int8 calibrated on `data`'s train split).

    Example:
        >>> report = export_model("demo-output/model", "model.onnx", quantize="auto")  # doctest: +SKIP
        >>> report.precision, [c.verdict_agreement for c in report.checks]  # doctest: +SKIP
        ('int8', [1.0, 0.996])
    """
    import onnx

    from detector.model.store import load_model_dir, model_sha256
    from export.samples import dataset_tiles, synthetic_tiles

    if quantize not in PRECISIONS:
        raise DetectorError(f"quantize must be one of {', '.join(PRECISIONS)}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise DetectorError(f"out {out}: the file name must end in .onnx")
    t0 = time.perf_counter()
    model, meta = load_model_dir(model_dir)
    source_sha = model_sha256(model_dir)
    dense = model.get_layer("logits")
    kernel, bias = np.asarray(dense.kernel.numpy(), np.float32), np.asarray(dense.bias.numpy(), np.float32)
    log(f"converting {model_dir} (Inception v3 to {meta.cam_layer}, {len(meta.classes)} classes) with tf2onnx")
    proto = convert(model, meta, opset)
    set_metadata(proto, meta, kernel, bias, source_sha, "fp32")

    compared = check or quantize != "none"  # held-back tiles and Keras's outputs on them, only when used
    if not compared:
        held_back = None
    elif data is not None:
        held_back = dataset_tiles(data, meta, check_tiles, ("val", "test"), seed=1)
    else:
        held_back = synthetic_tiles(meta.input_size, check_tiles, seed=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="detect-export-", dir=out.parent) as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        onnx.save(proto, str(fp32_path))
        report = ExportReport(out, "fp32" if quantize == "none" else quantize, 0.0, 0)
        keras_out = _keras_outputs(model, held_back) if compared else None
        if check:
            fp32 = compare(keras_out, fp32_path, held_back, meta, "fp32")
            report.checks.append(fp32)
            if fp32.max_abs_prob > FP32_PROB_TOLERANCE or fp32.cam_correlation < FP32_CAM_CORRELATION:
                raise DetectorError(
                    f"export parity failed: max |dprob| {fp32.max_abs_prob:.2e} (limit {FP32_PROB_TOLERANCE:g}), "
                    f"CAM correlation {fp32.cam_correlation:.6f} (limit {FP32_CAM_CORRELATION}); file not written"
                )
        if quantize != "none":
            partial = Path(tmp) / "quantized.onnx"
            if quantize == "fp16":
                half = to_fp16(proto)
                set_metadata(half, meta, kernel, bias, source_sha, "fp16")
                onnx.save(half, str(partial))
            else:
                if data is not None:
                    cal = dataset_tiles(data, meta, calibration_tiles, ("train",), seed=0)
                else:
                    cal = synthetic_tiles(meta.input_size, calibration_tiles, seed=0)
                log(f"calibrating int8 on {len(cal)} tiles")
                to_int8(fp32_path, partial, cal)
                q = onnx.load(str(partial))
                set_metadata(q, meta, kernel, bias, source_sha, "int8")
                onnx.save(q, str(partial))
            report.checks.append(
                compare(keras_out, partial, held_back, meta, "int8" if quantize == "auto" else quantize)
            )
            if quantize == "auto":
                report.choice = pick_precision(fp32_path, partial, report.checks[-1], held_back)
                report.precision = str(report.choice["precision"])
                log(f"--quantize auto: {report.precision} ({report.choice['why']})")
                if report.precision == "fp32":
                    partial = fp32_path
        os.replace(partial if quantize != "none" else fp32_path, out)
    report.seconds = time.perf_counter() - t0
    report.size_bytes = out.stat().st_size
    return report


def _keras_outputs(model, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from detector.backends.keras_backend import KerasBackend

    backend = KerasBackend(model, None)
    outs = [backend.predict(tiles[i : i + 16]) for i in range(0, len(tiles), 16)]
    return np.concatenate([o.probs for o in outs]), np.concatenate([o.cams for o in outs])
