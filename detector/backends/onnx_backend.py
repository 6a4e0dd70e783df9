"""The onnxruntime backend: an exported `.onnx` file, no TensorFlow in the process.

It picks the fastest execution provider the installed onnxruntime offers (TensorRT, then CUDA, then
the CPU) and uses every core the process may run on. Everything the pipeline needs besides the
weights (classes, thresholds, CAM layer, the head for Grad-CAM++) comes from the file's metadata.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from detector.backends.base import BackendOutput
from detector.backends.checks import check_meta, probe_outputs
from detector.backends.onnx_meta import CAM, FEATURES, INPUT, PROBS, read_metadata
from detector.data.folders import file_sha256
from detector.errors import ModelDirError

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def pick_providers(available: list[str]) -> list[str]:
    """The preferred providers this onnxruntime build has, best first; the CPU is always last."""
    chosen = [p for p in PREFERRED_PROVIDERS if p in available]
    return chosen or ["CPUExecutionProvider"]


class OnnxBackend:
    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        providers: list[str] | None = None,
        shared_cpu: bool = False,
    ) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelDirError(f"{path}: no such ONNX file (make one with `detect export MODEL_DIR --out {path}`)")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or usable_cores()
        opts.log_severity_level = 3
        if shared_cpu:  # idle pool threads sleep instead of spinning: the cores are shared with other work
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), opts, providers=providers or pick_providers(ort.get_available_providers())
            )
            meta, kernel, bias, props = read_metadata(self.session.get_modelmeta().custom_metadata_map)
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise ModelDirError(f"{path}: not a logo-detector ONNX export ({str(e)[:200]})") from None
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            text = str(e).splitlines()[0] if str(e) else e.__class__.__name__
            raise ModelDirError(f"{path}: cannot load ({text[:200]})") from None
        self.meta = meta
        self.head_kernel, self.head_bias = kernel, bias
        self.props = props
        self.providers = self.session.get_providers()
        self.name = f"onnx ({self.providers[0]}, {props.get('precision', 'fp32')})"
        self.model_name = path.stem
        self.model_sha256 = file_sha256(path)
        check_meta(meta, str(path))
        self._check_graph(path)
        probe_outputs(self, str(path))

    def _check_graph(self, path: Path) -> None:
        """The tensor names and ranks of the file's graph, against the contract in onnx_meta."""
        inputs = self.session.get_inputs()
        outputs = {o.name: o for o in self.session.get_outputs()}
        problems = []
        if [i.name for i in inputs] != [INPUT]:
            problems.append(f"inputs {[i.name for i in inputs]}, want ['{INPUT}']")
        elif len(inputs[0].shape) != 4 or isinstance(inputs[0].shape[3], int) and inputs[0].shape[3] != 3:
            problems.append(f"input shape {inputs[0].shape}, want [N, H, W, 3]")
        missing = [n for n in (PROBS, CAM, FEATURES) if n not in outputs]
        if missing:
            problems.append(f"no output {', '.join(missing)} (has {', '.join(outputs) or 'none'})")
        n_cls = len(self.meta.classes)
        if PROBS in outputs and isinstance(outputs[PROBS].shape[-1], int) and outputs[PROBS].shape[-1] != n_cls:
            problems.append(f"{PROBS} has {outputs[PROBS].shape[-1]} classes, the metadata {n_cls}")
        if problems:
            raise ModelDirError(f"{path}: not a logo-detector ONNX export: {'; '.join(problems)}")

    @classmethod
    def load(cls, path: str | Path, shared_cpu: bool = False) -> OnnxBackend:
        return cls(path, shared_cpu=shared_cpu)

    def predict(self, tiles: np.ndarray, with_features: bool = False) -> BackendOutput:
        wanted = [PROBS, CAM, FEATURES] if with_features else [PROBS, CAM]
        out = self.session.run(wanted, {INPUT: np.ascontiguousarray(tiles, dtype=np.float32)})
        return BackendOutput(out[0], out[1], out[2] if with_features else None)
