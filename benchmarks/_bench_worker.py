"""One measurement of `benchmarks/speed.py`, in a fresh process so peak memory and warm state stay its own.

    .venv/bin/python benchmarks/_bench_worker.py TASK '{"json": "arguments"}' RESULT.json

Tasks: `make-model` (a random-weights classifier directory), `export` (ONNX fp32/fp16/int8 through
`export.onnx_export.export_model`), `throughput` (tiles/s of one backend at several batch sizes),
`scan` (per-image scan latency of one backend, mode and image size), `accuracy` (scene verdicts and box
AP of several ONNX backends and modes on a box dataset). Each writes one JSON object to RESULT.json,
with the process's own RSS high-water mark (VmHWM) at the end.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def proc_status_mb(field: str) -> float:
    """VmRSS / VmHWM / ... of this process in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_backend_kind(model: str, kind: str):
    """keras: a model directory; onnx: a .onnx file. TensorFlow is imported only for keras."""
    if kind == "keras":
        from detector.tfquiet import import_tensorflow_quietly

        import_tensorflow_quietly()
    from detector.backends import open_backend

    return open_backend(model, kind)


def task_make_model(args: dict[str, Any]) -> dict[str, Any]:
    """Inception v3 with random weights (the architecture `detect train` builds), BatchNorm run a little."""
    import numpy as np

    from detector.tfquiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from detector.model.network import new_model
    from detector.model.store import save_model_dir
    from export.samples import synthetic_tiles

    model, meta = new_model(
        ["no-logo", "logo"], "no-logo", weights="none", input_size=args["input_size"], cam_layer=args["cam_layer"]
    )
    tiles = synthetic_tiles(args["input_size"], 16, seed=0).astype(np.float32)
    for i in range(0, len(tiles), 4):  # BatchNorm statistics from real-looking pixels, so outputs vary per tile
        model(tiles[i : i + 4], training=True)
    save_model_dir(model, meta, args["out"])
    return {"model_dir": args["out"]}


def task_export(args: dict[str, Any]) -> dict[str, Any]:
    from detector.tfquiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from export.onnx_export import export_model

    data = args.get("data")
    rep = export_model(args["model_dir"], args["out"], quantize=args["quantize"], data=data, check=False, log=print)
    return {
        "path": str(rep.path),
        "precision": rep.precision,
        "seconds": rep.seconds,
        "size_bytes": rep.size_bytes,
        "checks": [c.as_dict() for c in rep.checks],
    }


def _timed_reps(fn, reps: int, min_seconds: float) -> list[float]:
    """Seconds per call: `reps` repetitions, each calling fn until min_seconds have passed (at least once)."""
    out = []
    for _ in range(reps):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_seconds:
                break
        out.append(dt / n)
    return out


def task_throughput(args: dict[str, Any]) -> dict[str, Any]:
    """Tiles/s of backend.predict (probabilities + CAMs, what the scanner asks for) per batch size."""
    import statistics

    import numpy as np

    from export.samples import synthetic_tiles

    t0 = time.perf_counter()
    backend = open_backend_kind(args["model"], args["kind"])
    load_s = time.perf_counter() - t0
    size = backend.meta.input_size
    tiles = synthetic_tiles(size, max(args["batches"]), seed=3).astype(np.float32)
    rss_loaded = proc_status_mb("VmRSS")
    rows = []
    for b in args["batches"]:
        x = np.ascontiguousarray(tiles[:b])
        for _ in range(args["warmup"]):
            backend.predict(x)
        c0, t0 = time.process_time(), time.perf_counter()
        secs = _timed_reps(lambda x=x: backend.predict(x), args["reps"], args["rep_seconds"])
        cores_used = (time.process_time() - c0) / (time.perf_counter() - t0)
        per_call = statistics.median(secs)
        rows.append(
            {
                "batch": b,
                "tiles_per_s": b / per_call,
                "ms_per_call": per_call * 1e3,
                "reps_tiles_per_s": [b / s for s in secs],
                "cores_used": cores_used,
            }
        )
    return {"backend": backend.name, "input_size": size, "load_s": load_s, "rss_loaded_mb": rss_loaded, "rows": rows}


class RecordingBackend:
    """A backend wrapper that records the input shape of every model call (for the FLOP count)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.shapes: list[tuple[int, int, int]] = []
        for k in ("meta", "name", "model_name", "model_sha256", "head_kernel", "head_bias"):
            setattr(self, k, getattr(inner, k))

    def predict(self, tiles, with_features: bool = False):
        self.shapes.append(tuple(int(d) for d in tiles.shape[:3]))
        return self.inner.predict(tiles, with_features)


def scan_whole_levels(backend, pixels, opts):
    """Dense mode with every pyramid level in one block (no margins recomputed): what blocks cost, measured."""
    from detector.pipeline.dense import dense_evidence
    from detector.pipeline.evidence import TileEvidence
    from detector.pipeline.plan import plan_scales
    from detector.pipeline.scan import assemble_result

    t0 = time.perf_counter()
    h, w = pixels.shape[:2]
    scales = plan_scales(w, h, backend.meta.input_size, opts)
    block = 4 * max(h, w, backend.meta.input_size)  # larger than any level: one call per level
    tiles, probs, cams, feats = dense_evidence(backend, pixels, scales, opts.overlap, False, block=block)
    ev = TileEvidence(w, h, tiles, probs, cams, feats, (time.perf_counter() - t0) * 1e3, 0.0)
    return assemble_result(ev, backend, opts)


def task_scan(args: dict[str, Any]) -> dict[str, Any]:
    """Scan latency per image (decoded pixels in, result out), after a warm-up.

    mode: tiles | dense | dense-whole (dense with each pyramid level in a single block, a diagnostic)."""
    from detector.images import load_image
    from detector.pipeline.options import ScanOptions
    from detector.pipeline.plan import plan_scales
    from detector.pipeline.scan import scan_pixels

    t0 = time.perf_counter()
    backend = RecordingBackend(open_backend_kind(args["model"], args["kind"]))
    load_s = time.perf_counter() - t0
    rss_loaded = proc_status_mb("VmRSS")
    whole = args["mode"] == "dense-whole"
    opts = ScanOptions(mode="dense" if whole else args["mode"])
    scan = scan_whole_levels if whole else scan_pixels
    images = [load_image(p).pixels for p in args["images"]]
    t0 = time.perf_counter()
    if args.get("warmup", "scan") == "scan":
        scan(backend, images[0], opts)
    else:  # "calls": model calls instead of a whole scan (at 299 px one scan takes ~15 s)
        import numpy as np

        from detector.model.meta import CAM_GEOMETRY
        from detector.pipeline.tiling import pyramid_tiles

        h, w = images[0].shape[:2]
        size = backend.meta.input_size
        if opts.mode == "tiles":  # the batch shapes a scan of this size makes
            n = len(pyramid_tiles(w, h, plan_scales(w, h, size, opts), size))
            shapes = [(b, size, size) for b in {min(n, opts.batch_size), n % opts.batch_size} - {0}]
        else:  # two small whole-image calls of different shapes (Keras: a trace with free height and width)
            from detector.pipeline.dense import cells_per_window

            cells_per_window(backend, size)  # probed once per model, as a first scan would
            stride = CAM_GEOMETRY[backend.meta.cam_layer][0]
            shapes = [(1, size + stride, size + stride), (1, size + 2 * stride, size + 3 * stride)]
        for shape in shapes:
            backend.predict(np.zeros((*shape, 3), np.float32))
    warmup_s = time.perf_counter() - t0
    per_image = []
    for px in images[: args["timed"]]:
        backend.shapes = []
        c0, t0 = time.process_time(), time.perf_counter()
        r = scan(backend, px, opts)
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        per_image.append(
            {
                "seconds": dt,
                "cpu_seconds": cpu,
                "timings_ms": r.timings_ms,
                "shapes": backend.shapes,
                "has_logo": r.has_logo,
                "boxes": len(r.boxes),
            }
        )
    h, w = images[0].shape[:2]
    return {
        "backend": backend.name,
        "input_size": backend.meta.input_size,
        "scales": plan_scales(w, h, backend.meta.input_size, opts),
        "load_s": load_s,
        "warmup": args.get("warmup", "scan"),
        "warmup_s": warmup_s,
        "rss_loaded_mb": rss_loaded,
        "images": per_image,
    }


def task_accuracy(args: dict[str, Any]) -> dict[str, Any]:
    """For each (name, onnx file, mode): scene report, per-image verdicts and per-tile probabilities."""
    import numpy as np

    from detector.backends.onnx_backend import OnnxBackend
    from detector.data.boxes import read_box_dataset
    from detector.evaluation.scenes import collect_evidence, evaluate_scenes, scene_split
    from detector.pipeline.options import ScanOptions

    ds = read_box_dataset(args["scenes"])
    records = scene_split(ds, "all")[: args.get("limit") or None]
    out = {}
    backends: dict[str, Any] = {}
    for name, path, mode in args["configs"]:
        backend = backends.setdefault(path, OnnxBackend(path))
        opts = ScanOptions(mode=mode)
        t0 = time.perf_counter()
        evidence = collect_evidence(backend, ds, records, opts)
        seconds = time.perf_counter() - t0
        rep = evaluate_scenes(backend, ds, "all", opts, evidence)
        meta = backend.meta
        pos = [meta.classes.index(c) for c in meta.positive_classes]
        tile_verdicts = [
            np.stack([ev.probs[:, i] >= meta.threshold(meta.classes[i]) for i in pos], axis=1).any(axis=1).tolist()
            for _, ev in evidence
        ]
        out[name] = {
            "mode": mode,
            "backend": backend.name,
            "report": rep.report,
            "seconds": seconds,
            "files": [r.file for r in rep.records],
            "labels": [sorted(r.labels) for r in rep.results],
            "tile_verdicts": tile_verdicts,
            "tiles": [len(ev.tiles) for _, ev in evidence],
        }
    return {"configs": out}


TASKS = {
    "make-model": task_make_model,
    "export": task_export,
    "throughput": task_throughput,
    "scan": task_scan,
    "accuracy": task_accuracy,
}


def main() -> None:
    task, args, result = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    t0 = time.perf_counter()
    out = TASKS[task](args)
    out["task_seconds"] = time.perf_counter() - t0
    out["vm_hwm_mb"] = proc_status_mb("VmHWM")
    result.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
