"""Speed of the scanner, side by side in one run: engines, precisions, scan modes, image sizes, start-up.

    make bench          # full (~25 min on 2 free cores): benchmarks/results/speed.json + speed.md
    make bench-quick    # --quick (a few minutes once the models are cached): speed.quick.json + .md
    .venv/bin/python benchmarks/speed.py [--quick] [--only a,b,c,e] [--results DIR]

Two models: the demo model (`demo-output/model`, 128 px, head on mixed2, trained by `make demo`, with its
`demo-output/model.onnx`) and the architecture `detect train` builds by default (299 px, head on mixed10;
random weights: speed does not depend on the weights). fp16 and int8 (static QDQ) ONNX files are
exported once with `export.onnx_export.export_model` into `~/.cache/logo-detector/bench/speed/` (int8
calibrated on the demo's training tiles, or on synthetic tiles for the random model), as are the
synthetic test images (scenes of the demo logo).

Measured (every measurement in a fresh process, so peak memory and warm state are its own):
(a) classifier throughput, tiles/s of `backend.predict` (probabilities + CAMs): Keras, ONNX fp32, fp16,
    int8, at batch 1, 8 and 32; the median of timed repetitions after warm-up calls;
(b) scan latency per image (decoded pixels -> result; median over 3 images after a warm-up, 1 image for
    the 299-px model, whose tiles-mode scan is ~3 TFLOP) at 640x480, 1920x1080 and 4000x3000 with the
    default pyramid: tiles vs dense mode, Keras vs ONNX fp32, and ONNX int8 dense; tiles (windows) per
    image, model calls, and the process's peak RSS (VmHWM); plus one diagnostic row, dense with each
    pyramid level in a single block (299 px, 1920x1080), to show what the dense mode's blocks cost;
(c) folder throughput of the real CLI, `detect scan DIR --format jsonl --output F` on 100 synthetic
    640x480 images (the issue says 200: halved to keep the full run near 25 minutes on 2 cores; the
    rate is per image either way; Keras vs ONNX, tiles vs dense), and CLI start-up: `detect --help`
    and a one-image `detect scan` with the Keras model directory vs the .onnx file (wall time, peak RSS
    via wait4, from a small launcher process so this process's RSS does not leak into the child's);
(d) achieved GFLOP/s against the machine's peak for every throughput and scan row: FLOPs counted on the
    ONNX graph for the exact input shapes of the model calls (2 x MACs of Conv/MatMul/Gemm, ONNX shape
    inference), divided by the measured time; peak = cores x clock x FLOPs/cycle (see _bench_machine);
(e) accuracy beside speed on the demo's held-out scenes (`demo-output/test/scenes`): image verdicts and
    box AP@0.5 of dense vs tiles and of ONNX int8 vs fp32, with `detector.evaluation.scenes.evaluate_scenes`;
and a table of the issue's targets, pass/fail, with the numbers that explain a failure.
Machine details (CPU, cores, flags, memory, library versions, git commit) go into every result file.
The machine may be shared: every row carries the load other processes put on the cores meanwhile.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

from _bench_data import CACHE, scene_images  # noqa: E402
from _bench_flops import graph_flops, shapes_flops  # noqa: E402
from _bench_machine import machine_info  # noqa: E402
from _bench_report import Tab, num, pct  # noqa: E402
from _bench_run import Run, WorkerError, run_cmd, run_worker  # noqa: E402
from rich.console import Console  # noqa: E402

from detector.pipeline.dense import BLOCK_MEMORY_MIB  # noqa: E402

DEMO_DIR = ROOT / "demo-output"
RESULTS = HERE / "results"
DETECT = str(Path(sys.executable).parent / "detect")
ENGINES = ("keras", "fp32", "fp16", "int8")  # throughput rows: Keras, then the ONNX precisions
SCAN_CONFIGS = (("tiles", "keras"), ("tiles", "fp32"), ("dense", "keras"), ("dense", "fp32"), ("dense", "int8"))
FOLDER_CONFIGS = (("tiles", "keras"), ("tiles", "fp32"), ("dense", "keras"), ("dense", "fp32"))
ACCURACY_CONFIGS = (("fp32", "tiles"), ("fp32", "dense"), ("int8", "tiles"), ("int8", "dense"))
RANDOM_MODEL = "inception299-mixed10-v1"

console = Console(width=240)


@dataclass(frozen=True)
class Plan:
    quick: bool
    batches: tuple[int, ...] = (1, 8, 32)
    tp_warmup: int = 2
    tp_reps: int = 5
    tp_rep_seconds: float = 0.5
    resolutions: tuple[tuple[int, int], ...] = ((640, 480), (1920, 1080), (4000, 3000))
    big_resolutions: tuple[tuple[int, int], ...] = ((640, 480), (1920, 1080), (4000, 3000))  # the 299-px model
    big_scan_configs: tuple[tuple[str, str], ...] = SCAN_CONFIGS
    whole_levels: bool = True  # one diagnostic row: 299 px, 1920x1080, dense with each level in one block
    scan_images: int = 3  # timed images per scan row (demo model)
    scan_images_big: int = 1  # ... for the 299-px model (one tiles-mode scan is ~200-270 tiles of 11.4 GFLOP)
    folder_images: int = 100  # the issue asks for 200; 100 keeps the full run near 25 min on 2 cores
    cli_reps: int = 3  # one-image scans with the demo model (the 299-px model: once)
    help_reps: int = 5
    accuracy_limit: int | None = None  # scenes; None: all
    max_other_load: float = 0.7  # cores busy with other work above which a measurement is repeated once
    retry_budget: int = 6  # repeats in the whole run, at most

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if not quick:
            return cls(quick=False)
        return cls(
            quick=True,
            tp_warmup=1,
            tp_reps=1,
            tp_rep_seconds=0.0,
            resolutions=((640, 480), (1920, 1080)),
            big_resolutions=((1920, 1080),),
            big_scan_configs=(("tiles", "fp32"), ("dense", "fp32"), ("dense", "int8")),
            scan_images=1,
            scan_images_big=1,
            folder_images=20,
            cli_reps=1,
            help_reps=2,
            accuracy_limit=20,
            retry_budget=0,
        )


_retries = {"left": 0}


def measure(task: str, args: dict[str, Any], plan: Plan) -> Run:
    """run_worker, repeated once (within the run's budget) when other processes kept the cores busy."""
    best = run_worker(task, args)
    attempts = 1
    if best.other_load > plan.max_other_load and _retries["left"] > 0:
        _retries["left"] -= 1
        log(f"  other processes kept {best.other_load:.1f} cores busy: measuring again")
        time.sleep(5)
        again = run_worker(task, args)
        attempts = 2
        if again.other_load < best.other_load:
            best = again
    best.result["attempts"] = attempts
    return best


@dataclass
class ModelSpec:
    key: str
    label: str  # short, for tables; the Models table says the rest
    description: str
    model_dir: Path
    input_size: int
    cam_layer: str
    trained: bool
    onnx: dict[str, Path] = field(default_factory=dict)  # fp32 / fp16 / int8

    @property
    def flops_per_tile(self) -> float:
        return graph_flops(str(self.onnx["fp32"]), self.input_size, self.input_size)

    def engine_path(self, engine: str) -> tuple[str, str]:
        """engine (keras|fp32|fp16|int8) -> (backend kind, model path)."""
        return ("keras", str(self.model_dir)) if engine == "keras" else ("onnx", str(self.onnx[engine]))


def log(msg: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {msg}", highlight=False)


def engine_label(engine: str) -> str:
    return "Keras" if engine == "keras" else f"ONNX {engine}"


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


# --------------------------------------------------------------------------------------------- models


def demo_running() -> bool:
    """Is `make demo` (python -m detector.demo) rewriting demo-output/ (not another --out folder) right now?"""
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            argv = [a.decode(errors="replace") for a in (p / "cmdline").read_bytes().split(b"\0")]
            cwd = Path(os.readlink(p / "cwd"))
        except OSError:
            continue
        if "detector.demo" not in argv:
            continue
        out = argv[argv.index("--out") + 1] if "--out" in argv[:-1] else "demo-output"
        out = next((a.split("=", 1)[1] for a in argv if a.startswith("--out=")), out)
        if (cwd / out).resolve() == DEMO_DIR.resolve():
            return True
    return False


def wait_for_demo(timeout_s: float = 1800) -> None:
    t0 = time.monotonic()
    said = False
    while demo_running():
        if not said:
            log("`make demo` is running; waiting for demo-output/ to be complete")
            said = True
        if time.monotonic() - t0 > timeout_s:
            raise SystemExit("error: `make demo` still running after 30 minutes")
        time.sleep(10)
    needed = [DEMO_DIR / "model" / "model.keras", DEMO_DIR / "test" / "scenes" / "annotations.json"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} missing: run `make demo` first")


def onnx_source_sha(path: Path) -> str:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}.get("source_model_sha256", "")


def ensure_export(model_dir: Path, out: Path, quantize: str, data: Path | None, prep: list[dict]) -> Path:
    if out.is_file():
        return out
    log(f"exporting {model_dir.name} -> {out.name} ({quantize}) ...")
    run = run_worker(
        "export",
        {"model_dir": str(model_dir), "out": str(out), "quantize": quantize, "data": str(data) if data else None},
    )
    prep.append({"what": f"export {out}", **run.summary(), "checks": run.result.get("checks")})
    log(f"  done in {run.wall_s:.0f} s (peak RSS {run.max_rss_mb:,.0f} MiB)")
    return out


def prepare_models(prep: list[dict]) -> list[ModelSpec]:
    """The demo model (+ its fp16/int8 exports) and the random-weights 299-px model (+ all three exports)."""
    from detector.data.folders import file_sha256

    wait_for_demo()
    demo_dir = DEMO_DIR / "model"
    meta = json.loads((demo_dir / "model.json").read_text())
    keras_sha = file_sha256(demo_dir / "model.keras")
    demo_cache = CACHE / f"demo-{keras_sha[:12]}-{file_sha256(demo_dir / 'model.json')[:12]}"
    demo_cache.mkdir(parents=True, exist_ok=True)
    demo = ModelSpec(
        "demo",
        f"demo {meta['input_size']}/{meta['cam_layer']}",
        f"the demo model (demo-output/model): {meta['input_size']} px, head on {meta['cam_layer']}, trained",
        demo_dir,
        int(meta["input_size"]),
        meta["cam_layer"],
        True,
    )
    fp32 = DEMO_DIR / "model.onnx"
    if not (fp32.is_file() and onnx_source_sha(fp32) == keras_sha):
        fp32 = ensure_export(demo_dir, demo_cache / "fp32.onnx", "none", None, prep)
    tiles = DEMO_DIR / "train" / "tiles"
    demo.onnx = {
        "fp32": fp32,
        "fp16": ensure_export(demo_dir, demo_cache / "fp16.onnx", "fp16", None, prep),
        "int8": ensure_export(demo_dir, demo_cache / "int8.onnx", "int8", tiles if tiles.is_dir() else None, prep),
    }

    rdir = CACHE / RANDOM_MODEL
    if not (rdir / "model.keras").is_file():
        log("building the random-weights Inception v3 (299 px, mixed10) ...")
        run = run_worker("make-model", {"input_size": 299, "cam_layer": "mixed10", "out": str(rdir)})
        prep.append({"what": f"make-model {rdir}", **run.summary()})
    what = "the default `detect train` architecture: 299 px, head on mixed10, random weights (BatchNorm run a little)"
    big = ModelSpec("inception299", "299/mixed10 (random)", what, rdir, 299, "mixed10", False)
    big.onnx = {
        "fp32": ensure_export(rdir, rdir / "fp32.onnx", "none", None, prep),
        "fp16": ensure_export(rdir, rdir / "fp16.onnx", "fp16", None, prep),
        "int8": ensure_export(rdir, rdir / "int8.onnx", "int8", None, prep),
    }
    return [demo, big]


# ------------------------------------------------------------------------------------- (a) throughput


def bench_throughput(models: list[ModelSpec], plan: Plan, peak: dict) -> list[dict]:
    rows = []
    for m in models:
        for engine in ENGINES:
            kind, path = m.engine_path(engine)
            log(f"(a) throughput: {m.key} {engine_label(engine)}")
            args = {
                "model": path,
                "kind": kind,
                "batches": list(plan.batches),
                "reps": plan.tp_reps,
                "rep_seconds": plan.tp_rep_seconds,
                "warmup": plan.tp_warmup,
            }
            try:
                run = measure("throughput", args, plan)
            except WorkerError as e:
                log(f"[red]{e}[/red]")
                rows.append({"model": m.key, "engine": engine, "error": str(e)})
                continue
            for r in run.result["rows"]:
                gflops = r["tiles_per_s"] * m.flops_per_tile / 1e9
                rows.append(
                    {
                        "model": m.key,
                        "engine": engine,
                        "backend": run.result["backend"],
                        "batch": r["batch"],
                        "tiles_per_s": r["tiles_per_s"],
                        "ms_per_call": r["ms_per_call"],
                        "reps_tiles_per_s": r["reps_tiles_per_s"],
                        "cores_used": r["cores_used"],
                        "gflop_per_tile": m.flops_per_tile / 1e9,
                        "gflops": gflops,
                        "fp32_peak_fraction": gflops / peak["fp32_peak_gflops"],
                        "int8_peak_fraction": gflops / peak["int8_peak_gops"] if engine == "int8" else None,
                        "load_s": run.result["load_s"],
                        "attempts": run.result["attempts"],
                        "process": run.summary(),
                    }
                )
    ok = [r for r in rows if "error" not in r]
    keras = {(r["model"], r["batch"]): r["tiles_per_s"] for r in ok if r["engine"] == "keras"}
    fp32 = {(r["model"], r["batch"]): r["tiles_per_s"] for r in ok if r["engine"] == "fp32"}
    for r in rows:
        if "error" in r:
            continue
        k = (r["model"], r["batch"])
        r["vs_keras"] = r["tiles_per_s"] / keras[k] if k in keras else None
        r["vs_onnx_fp32"] = r["tiles_per_s"] / fp32[k] if k in fp32 else None
    return rows


def throughput_table(rows: list[dict], models: list[ModelSpec]) -> Tab:
    label = {m.key: m.label for m in models}
    t = Tab(
        "(a) Classifier throughput (tiles/s, backend.predict: probabilities + CAMs)",
        ["model", "engine", "batch", "tiles/s", "ms/call", "x Keras", "x ONNX fp32", "GFLOP/tile", "GFLOP/s",
         "% fp32 peak", "% int8 peak", "cores used", "other load"],
        right=set(range(2, 13)),
    )  # fmt: skip
    for r in rows:
        if "error" in r:
            t.add(label[r["model"]], engine_label(r["engine"]), "error", r["error"].splitlines()[-1][:80])
            continue
        t.add(
            label[r["model"]],
            engine_label(r["engine"]),
            r["batch"],
            num(r["tiles_per_s"], 1),
            num(r["ms_per_call"], 1),
            num(r["vs_keras"], 2),
            num(r["vs_onnx_fp32"], 2),
            num(r["gflop_per_tile"], 2),
            num(r["gflops"], 1),
            pct(r["fp32_peak_fraction"]),
            pct(r["int8_peak_fraction"]),
            num(r["cores_used"], 2),
            num(r["process"]["other_load"], 2),
        )
    t.notes = [
        "Median of timed repetitions after warm-up calls, one fresh process per model and engine.",
        "GFLOP/s = FLOPs of the ONNX graph at the tile size (2 x MACs of Conv/MatMul/Gemm) x tiles/s; int8 rows"
        " count the same FLOPs as 8-bit operations (their own peak is the int8 column).",
        "cores used = the process's CPU time / wall time while timed; other load = cores kept busy by other"
        " processes during the measurement (the machine is shared: low cores used + high other load = contention).",
    ]
    return t


# ---------------------------------------------------------------------------------------- (b) scan


def bench_scan(models: list[ModelSpec], plan: Plan, peak: dict) -> list[dict]:
    rows = []
    for m in models:
        big = m.input_size >= 299
        timed = plan.scan_images_big if big else plan.scan_images
        for w, h in plan.big_resolutions if big else plan.resolutions:
            images = [str(p) for p in scene_images(w, h, timed)]
            configs = list(plan.big_scan_configs if big else SCAN_CONFIGS)
            if big and plan.whole_levels and (w, h) == (1920, 1080):
                configs.append(("dense-whole", "fp32"))
            for mode, engine in configs:
                kind, path = m.engine_path(engine)
                log(f"(b) scan: {m.key} {w}x{h} {mode} {engine_label(engine)}")
                # tiles: warm up with model calls of the scan's batch shapes; dense: with a whole scan of the
                # first image, or (299 px, where one scan takes ~15 s) with two small calls of new shapes
                warmup = "calls" if mode == "tiles" or big else "scan"
                args = {"model": path, "kind": kind, "mode": mode, "images": images, "timed": timed, "warmup": warmup}
                base = {"model": m.key, "resolution": f"{w}x{h}", "mode": mode, "engine": engine}
                try:
                    run = measure("scan", args, plan)
                except WorkerError as e:
                    log(f"[red]{e}[/red]")
                    rows.append({**base, "error": str(e)})
                    continue
                res = run.result
                imgs = res["images"]
                fp32 = str(m.onnx["fp32"])
                flops = [shapes_flops(fp32, i["shapes"]) for i in imgs]
                model_s = median([i["timings_ms"]["model"] / 1e3 for i in imgs])
                gflop = median(flops) / 1e9
                achieved = gflop / model_s if model_s else None
                top = peak["int8_peak_gops"] if engine == "int8" else peak["fp32_peak_gflops"]
                rows.append(
                    {
                        **base,
                        "backend": res["backend"],
                        "scales": res["scales"],
                        "images": len(imgs),
                        "seconds_median": median([i["seconds"] for i in imgs]),
                        "seconds_all": [i["seconds"] for i in imgs],
                        "cores_used": sum(i["cpu_seconds"] for i in imgs) / sum(i["seconds"] for i in imgs),
                        "model_s_median": model_s,
                        "tiling_s_median": median([i["timings_ms"]["tiling"] / 1e3 for i in imgs]),
                        "boxes_s_median": median([i["timings_ms"]["boxes"] / 1e3 for i in imgs]),
                        "tiles": int(median([i["timings_ms"]["tiles"] for i in imgs])),
                        "model_calls": int(median([len(i["shapes"]) for i in imgs])),
                        "gflop_per_image": gflop,
                        "gflops": achieved,
                        "peak_fraction": achieved / top if achieved else None,
                        "peak_kind": "int8" if engine == "int8" else "fp32",
                        "seconds_at_peak": gflop / top,
                        "gflop_one_pass": one_pass_gflop(m, w, h, res["scales"]) if mode != "tiles" else None,
                        "warmup": res["warmup"],
                        "warmup_s": res["warmup_s"],
                        "attempts": res["attempts"],
                        "load_s": res["load_s"],
                        "rss_loaded_mb": res["rss_loaded_mb"],
                        "peak_rss_mb": res["vm_hwm_mb"],
                        "has_logo": [i["has_logo"] for i in imgs],
                        "process": run.summary(),
                    }
                )
    tiles_s = {
        (r["model"], r["resolution"], r["engine"]): r["seconds_median"]
        for r in rows
        if r["mode"] == "tiles" and "error" not in r
    }
    for r in rows:
        if r["mode"] != "tiles" and "error" not in r:
            ref = tiles_s.get((r["model"], r["resolution"], "keras" if r["engine"] == "keras" else "fp32"))
            r["speedup_vs_tiles"] = ref / r["seconds_median"] if ref else None
    return rows


def one_pass_gflop(m: ModelSpec, width: int, height: int, scales: list[float]) -> float:
    """GFLOP of a dense scan if every pyramid level went through the model whole (no blocks, no margins)."""
    from detector.pipeline.tiling import level_size

    total = 0.0
    for s in scales:
        lw, lh = level_size(width, height, s)
        total += graph_flops(str(m.onnx["fp32"]), max(lh, m.input_size), max(lw, m.input_size))
    return total / 1e9


def scan_table(rows: list[dict], models: list[ModelSpec]) -> Tab:
    label = {m.key: m.label for m in models}
    t = Tab(
        "(b) Scan latency per image (default pyramid; decoded pixels -> result)",
        ["model", "image", "mode", "engine", "scales", "tiles", "calls", "median s", "model s", "boxes s",
         "x tiles", "GFLOP/img", "GFLOP/s", "% peak", "RSS loaded MiB", "peak RSS MiB", "cores used", "other load"],
        right=set(range(4, 18)),
    )  # fmt: skip
    for r in rows:
        if "error" in r:
            t.add(label[r["model"]], r["resolution"], r["mode"], engine_label(r["engine"]), "error")
            continue
        t.add(
            label[r["model"]],
            r["resolution"],
            r["mode"],
            engine_label(r["engine"]),
            len(r["scales"]),
            r["tiles"],
            r["model_calls"],
            num(r["seconds_median"], 2),
            num(r["model_s_median"], 2),
            num(r["boxes_s_median"], 2),
            num(r.get("speedup_vs_tiles"), 2),
            num(r["gflop_per_image"], 0),
            num(r["gflops"], 1),
            pct(r["peak_fraction"]) + (" (int8)" if r["peak_kind"] == "int8" else ""),
            num(r["rss_loaded_mb"], 0),
            num(r["peak_rss_mb"], 0),
            num(r["cores_used"], 2),
            num(r["process"]["other_load"], 2),
        )
    t.notes = [
        "Median over the timed images (different scenes; 299 px: one image), after a warm-up (tiles: model calls of"
        " the scan's batch shapes; dense: a scan of the first image, or at 299 px two small calls of other shapes,"
        " so the first call at each level's shape is timed); one fresh process per row, whose peak RSS (VmHWM) is"
        " its own. Decoding the file is not included.",
        "tiles: windows per image (dense mode: the same windows, read off one backbone pass per level and block);"
        " calls: backend calls per image (batches of 32 tiles, or one per level/block).",
        "x tiles: dense speed-up over tiles mode with the same engine (int8 dense: over ONNX fp32 tiles).",
        "dense-whole (diagnostic, not a library mode): dense with every pyramid level in one block"
        f" (detector.pipeline.dense.dense_evidence with a block larger than the level): what blocks cut by the"
        f" {BLOCK_MEMORY_MIB}-MiB activation budget and their half-window margins cost in FLOPs, time and memory"
        " (none when every level fits the budget, as at 1920x1080).",
        "GFLOP/s: FLOPs of the model calls actually made / model time. % peak of fp32 (int8 rows: of int8).",
    ]
    return t


# --------------------------------------------------------------------------------- (c) folder and CLI


def jsonl_stats(path: Path) -> dict[str, Any]:
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    ms = [sum(r["timings_ms"].get(k, 0.0) for k in ("tiling", "model", "boxes")) for r in recs if r.get("timings_ms")]
    return {
        "results": len(recs),
        "errors": sum(1 for r in recs if r.get("errors")),
        "with_logo": sum(1 for r in recs if r.get("has_logo")),
        "pipeline_ms_median": median(ms),
        "labels": {r["path"]: sorted(r.get("labels", [])) for r in recs},
    }


def bench_folder(demo: ModelSpec, plan: Plan) -> list[dict]:
    n = plan.folder_images
    folder = CACHE / f"folder-640x480-{n}"
    log(f"(c) making {n} synthetic 640x480 images in {folder} (cached)")
    scene_images(640, 480, n, folder=folder, seed=101)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-folder-") as tmp:
        for mode, engine in FOLDER_CONFIGS:
            kind, path = demo.engine_path(engine)
            out = Path(tmp) / f"{mode}-{engine}.jsonl"
            log(f"(c) detect scan DIR: {mode} {engine_label(engine)} ({n} images)")
            argv = [DETECT, "scan", str(folder), "--format", "jsonl", "--output", str(out), "--model", path]
            run = run_cmd(argv + ["--mode", mode])
            stats = jsonl_stats(out)
            rows.append(
                {
                    "model": demo.key,
                    "mode": mode,
                    "engine": engine,
                    "images": n,
                    "returncode": run.returncode,
                    "images_per_s": stats["results"] / run.wall_s if run.wall_s else None,
                    **{k: v for k, v in stats.items() if k != "labels"},
                    "_labels": stats["labels"],
                    "process": run.summary(),
                    "stderr_tail": run.stderr.strip().splitlines()[-3:] if run.returncode else [],
                }
            )
    ref = next((r["_labels"] for r in rows if r["mode"] == "tiles" and r["engine"] == "fp32"), {})
    for r in rows:
        labels = r.pop("_labels")
        same = [labels[p] == ref[p] for p in ref if p in labels]
        r["verdict_agreement_vs_onnx_tiles"] = sum(same) / len(same) if same else None
    return rows


def folder_table(rows: list[dict], demo: ModelSpec) -> Tab:
    t = Tab(
        f"(c) Folder throughput: detect scan DIR --format jsonl --output F ({demo.label}, 640x480 JPEGs)",
        ["mode", "engine", "images", "wall s", "images/s", "pipeline ms/img", "CPU s", "cores used", "peak RSS MiB",
         "verdicts = ONNX tiles", "errors", "other load"],
        right=set(range(2, 12)),
    )  # fmt: skip
    for r in rows:
        p = r["process"]
        t.add(
            r["mode"],
            engine_label(r["engine"]),
            f"{r['results']}/{r['images']}",
            num(p["wall_s"], 1),
            num(r["images_per_s"], 2),
            num(r["pipeline_ms_median"], 0),
            num(p["cpu_s"], 1),
            num(p["cpu_s"] / p["wall_s"] if p["wall_s"] else None, 2),
            num(p["max_rss_mb"], 0),
            pct(r["verdict_agreement_vs_onnx_tiles"]),
            r["errors"] if r["returncode"] == 0 else f"exit {r['returncode']}",
            num(p["other_load"], 2),
        )
    t.notes = [
        "images/s = images / wall time of the whole command (start-up included); pipeline ms/img = median of"
        " the results' own timings (tiling + model + boxes). Peak RSS of the process (wait4 ru_maxrss).",
    ]
    return t


def bench_cli(models: list[ModelSpec], plan: Plan) -> list[dict]:
    rows = []
    log("(c) detect --help")
    runs = [run_cmd([DETECT, "--help"]) for _ in range(plan.help_reps)]
    rows.append(cli_row("detect --help", "-", runs))
    image = str(scene_images(640, 480, 1)[0])
    for m in models if not plan.quick else models[:1]:
        reps = plan.cli_reps if m.input_size < 299 else 1
        for engine in ("keras", "fp32"):
            kind, path = m.engine_path(engine)
            log(f"(c) one-image detect scan: {m.key} {engine_label(engine)}")
            runs = [run_cmd([DETECT, "scan", image, "--format", "json", "--model", path]) for _ in range(reps)]
            rows.append(cli_row(f"detect scan 1 image 640x480 --model {Path(path).name}", m.key, runs, engine))
    return rows


def cli_row(what: str, model: str, runs: list[Run], engine: str | None = None) -> dict:
    ok = [r for r in runs if r.returncode == 0]
    return {
        "command": what,
        "model": model,
        "engine": engine,
        "runs": len(runs),
        "failed": len(runs) - len(ok),
        "wall_s_median": median([r.wall_s for r in ok]),
        "cpu_s_median": median([r.cpu_s for r in ok]),
        "max_rss_mb": max((r.max_rss_mb for r in ok), default=None),
        "other_load": median([r.other_load for r in runs]),
        "error": runs[0].stderr.strip().splitlines()[-1:] if not ok else None,
    }


def cli_table(rows: list[dict], models: list[ModelSpec]) -> Tab:
    label = {m.key: m.label for m in models} | {"-": "-"}
    t = Tab(
        "(c) CLI start-up and one-image scan, end to end (issue #5)",
        ["command", "model", "engine", "runs", "median wall s", "median CPU s", "peak RSS MiB", "other load"],
        right=set(range(3, 8)),
    )
    for r in rows:
        t.add(
            r["command"],
            label[r["model"]],
            engine_label(r["engine"]) if r["engine"] else "-",
            f"{r['runs'] - r['failed']}/{r['runs']}",
            num(r["wall_s_median"], 2),
            num(r["cpu_s_median"], 2),
            num(r["max_rss_mb"], 0),
            num(r["other_load"], 2),
        )
    t.notes = ["Fresh process each run: interpreter start, imports, model load, decode, scan, output."]
    return t


# ------------------------------------------------------------------------------------------ (e) accuracy


def bench_accuracy(demo: ModelSpec, plan: Plan) -> dict:
    scenes = DEMO_DIR / "test" / "scenes"
    configs = [[f"{p} {mode}", str(demo.onnx[p]), mode] for p, mode in ACCURACY_CONFIGS]
    log(f"(e) accuracy on {scenes} ({plan.accuracy_limit or 'all'} scenes): {', '.join(c[0] for c in configs)}")
    run = run_worker("accuracy", {"scenes": str(scenes), "configs": configs, "limit": plan.accuracy_limit})
    res = run.result["configs"]
    ref = res["fp32 tiles"]
    out: dict[str, Any] = {"scenes": str(scenes), "process": run.summary(), "configs": {}}
    for name, r in res.items():
        agree = [a == b for a, b in zip(r["labels"], ref["labels"], strict=True)]
        row = {
            "mode": r["mode"],
            "backend": r["backend"],
            "images": r["report"]["images"],
            "boxes": r["report"]["boxes"],
            "image_level": r["report"]["image_level"],
            "box": r["report"]["box"],
            "seconds_per_image": r["seconds"] / max(1, r["report"]["images"]),
            "tiles_per_image": median(r["tiles"]),
            "verdict_agreement_vs_fp32_tiles": sum(agree) / len(agree) if agree else None,
            "ap50_minus_fp32_tiles": _sub(r["report"]["box"].get("ap50"), ref["report"]["box"].get("ap50")),
        }
        same = {"int8 tiles": "fp32 tiles", "int8 dense": "fp32 dense"}.get(name)
        if same in res:  # the same windows: compare int8 with fp32 window by window and image by image
            base = res[same]
            per_image = zip(r["tile_verdicts"], base["tile_verdicts"], strict=True)
            pairs = [(a, b) for ta, tb in per_image for a, b in zip(ta, tb, strict=True)]
            row["tile_verdict_agreement"] = sum(a == b for a, b in pairs) / len(pairs) if pairs else None
            image_agree = [a == b for a, b in zip(r["labels"], base["labels"], strict=True)]
            row["verdict_agreement_vs_same_mode_fp32"] = sum(image_agree) / len(image_agree) if image_agree else None
        out["configs"][name] = row
    return out


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def accuracy_table(acc: dict, demo: ModelSpec) -> Tab:
    t = Tab(
        f"(e) Accuracy beside speed: {demo.label}, held-out scenes ({Path(acc['scenes']).relative_to(ROOT)})",
        ["config", "scenes", "boxes", "image P", "image R", "image AP", "box AP@0.5", "AP@.5:.95", "AP50 - fp32 tiles",
         "verdicts = fp32 tiles", "verdicts = fp32 same mode", "tile verdicts = fp32", "s/image"],
        right=set(range(1, 13)),
    )  # fmt: skip
    for name, r in acc["configs"].items():
        il = next(iter(r["image_level"].values()), {})
        t.add(
            f"ONNX {name}",
            r["images"],
            r["boxes"],
            num(il.get("precision"), 3),
            num(il.get("recall"), 3),
            num(il.get("average_precision"), 3),
            num(r["box"].get("ap50"), 3),
            num(r["box"].get("ap"), 3),
            num(r["ap50_minus_fp32_tiles"], 3),
            pct(r["verdict_agreement_vs_fp32_tiles"]),
            pct(r.get("verdict_agreement_vs_same_mode_fp32")),
            pct(r.get("tile_verdict_agreement"), 2),
            num(r["seconds_per_image"], 2),
        )
    t.notes = [
        "Verdicts: the set of logo labels an image gets (detector.evaluation.scenes.evaluate_scenes, the"
        " model's calibrated thresholds)."
        " Tile verdicts: every window over its class threshold or not, window by window.",
        "Scenes are 640x480 synthetic scenes of the demo logo the model never saw (seed 3).",
    ]
    return t


# ---------------------------------------------------------------------------------------------- targets


def find(rows: list[dict], **kv: Any) -> dict | None:
    return next((r for r in rows if "error" not in r and all(r.get(k) == v for k, v in kv.items())), None)


def targets(tp: list[dict], scan: list[dict], acc: dict | None, models: list[ModelSpec], peak: dict) -> list[dict]:
    out = []

    def add(target: str, model: str, measured: str, required: str, ok: bool | None, why: str) -> None:
        out.append(
            {"target": target, "model": model, "measured": measured, "required": required, "pass": ok, "why": why}
        )

    for m in models:
        k, o = find(tp, model=m.key, engine="keras", batch=8), find(tp, model=m.key, engine="fp32", batch=8)
        if k and o:
            ratio = o["tiles_per_s"] / k["tiles_per_s"]
            add(
                "ONNX fp32 >= 1.2x Keras tiles/s at batch 8",
                m.key,
                f"{ratio:.2f}x ({o['tiles_per_s']:.1f} vs {k['tiles_per_s']:.1f} tiles/s)",
                ">= 1.20x",
                ratio >= 1.2,
                f"Keras {pct(k['fp32_peak_fraction'])} vs ONNX {pct(o['fp32_peak_fraction'])} of fp32 peak"
                f" ({k['gflops']:.0f} vs {o['gflops']:.0f} GFLOP/s); other load {o['process']['other_load']:.1f} cores",
            )
    accs = (acc or {}).get("configs", {})
    int8_acc = accs.get("int8 tiles")
    for m in models:
        o, q = find(tp, model=m.key, engine="fp32", batch=8), find(tp, model=m.key, engine="int8", batch=8)
        if not (o and q):
            continue
        ratio = q["tiles_per_s"] / o["tiles_per_s"]
        agree = int8_acc.get("verdict_agreement_vs_fp32_tiles") if (int8_acc and m.trained) else None
        tile_agree = int8_acc.get("tile_verdict_agreement") if (int8_acc and m.trained) else None
        ok = ratio >= 1.5 and (agree is None or agree >= 0.99) if m.trained else ratio >= 1.5
        measured = f"{ratio:.2f}x ({q['tiles_per_s']:.1f} vs {o['tiles_per_s']:.1f} tiles/s)"
        if m.trained:
            measured += f"; image verdicts {pct(agree)}, tile verdicts {pct(tile_agree, 2)}"
        add(
            "ONNX int8 >= 1.5x ONNX fp32 (batch 8), >= 99% verdict agreement",
            m.key,
            measured,
            ">= 1.50x, >= 99%",
            ok if (agree is not None or not m.trained) else None,
            f"int8 at {pct(q['int8_peak_fraction'])} of the int8 peak ({q['gflops']:.0f} GOP/s), fp32 at"
            f" {pct(o['fp32_peak_fraction'])} of fp32 peak"
            + ("" if m.trained else "; agreement not judged: random weights"),
        )
    dense_acc, tiles_acc = accs.get("fp32 dense"), accs.get("fp32 tiles")
    for m in models:
        t_row = find(scan, model=m.key, resolution="1920x1080", mode="tiles", engine="fp32")
        d_row = find(scan, model=m.key, resolution="1920x1080", mode="dense", engine="fp32")
        if not (t_row and d_row):
            continue
        speed = t_row["seconds_median"] / d_row["seconds_median"]
        flop_ratio = t_row["gflop_per_image"] / d_row["gflop_per_image"]
        need_acc = m.trained and dense_acc is not None
        agree = dense_acc["verdict_agreement_vs_fp32_tiles"] if need_acc else None
        dap = dense_acc["ap50_minus_fp32_tiles"] if need_acc else None
        ok: bool | None = speed >= 3.0
        if need_acc:
            ok = ok and agree is not None and agree >= 0.95 and dap is not None and abs(dap) <= 0.05
        elif m.trained and ok:
            ok = None  # fast enough, accuracy not measured in this run
        acc_note = "" if need_acc else ("; accuracy not judged: random weights" if not m.trained else "")
        if m.trained and not need_acc:
            acc_note = "; accuracy not measured (section e not run)"
        measured = f"{speed:.2f}x ({t_row['seconds_median']:.2f} s -> {d_row['seconds_median']:.2f} s, ONNX fp32)"
        if need_acc:
            measured += (
                f"; verdicts {pct(agree)}, AP50 {dense_acc['box']['ap50']:.3f} vs {tiles_acc['box']['ap50']:.3f}"
                f" ({dap:+.3f})"
            )
        add(
            "dense >= 3x faster than tiles, 1920x1080, 3 scales; >= 95% verdicts; AP50 within 0.05",
            m.key,
            measured,
            ">= 3.00x, >= 95%, |dAP50| <= 0.05",
            ok,
            f"FLOPs: tiles {t_row['gflop_per_image']:.0f} vs dense {d_row['gflop_per_image']:.0f} GFLOP/image"
            f" (x{flop_ratio:.2f} fewer; {d_row['model_calls']} model calls: levels whole within the"
            f" {BLOCK_MEMORY_MIB}-MiB budget, else blocks with half-window margins;"
            f" one pass per whole level would be {d_row['gflop_one_pass']:.0f} GFLOP, x"
            f"{t_row['gflop_per_image'] / d_row['gflop_one_pass']:.2f} fewer than tiles);"
            f" {len(t_row['scales'])} scales; model time {t_row['model_s_median']:.2f} ->"
            f" {d_row['model_s_median']:.2f} s at {t_row['gflops']:.0f} -> {d_row['gflops']:.0f} GFLOP/s" + acc_note,
        )
    big = next((m for m in models if m.input_size == 299), None)
    for engine in ("fp32", "int8"):
        r = find(scan, model=big.key, resolution="1920x1080", mode="dense", engine=engine) if big else None
        if not r:
            continue
        top = peak["int8_peak_gops"] if engine == "int8" else peak["fp32_peak_gflops"]
        whole = find(scan, model=big.key, resolution="1920x1080", mode="dense-whole", engine="fp32")
        whole_text = (
            f"; measured with each level in one block (fp32): {whole['seconds_median']:.2f} s,"
            f" {whole['gflop_per_image']:.0f} GFLOP, peak RSS {whole['peak_rss_mb']:,.0f} MiB"
            if whole
            else ""
        )
        add(
            f"1920x1080 at 3 scales <= 1.0 s median, dense + ONNX {engine}, 299 px tiles",
            big.key,
            f"{r['seconds_median']:.2f} s ({len(r['scales'])} scales, {r['tiles']} windows)",
            "<= 1.00 s",
            r["seconds_median"] <= 1.0,
            f"{r['gflop_per_image']:.0f} G{'OP' if engine == 'int8' else 'FLOP'} per image at"
            f" {r['gflops']:.0f} G/s achieved ({pct(r['peak_fraction'])} of the {engine} peak"
            f" {top:.0f} G/s); 1.0 s needs {r['gflop_per_image']:.0f} G/s"
            f" ({pct(r['gflop_per_image'] / top)} of peak); even at 100% of peak: {r['seconds_at_peak']:.2f} s"
            f" model time; one pass per whole level: {r['gflop_one_pass']:.0f} G, {r['gflop_one_pass'] / top:.2f} s"
            f" at peak; boxes stage {r['boxes_s_median']:.2f} s" + whole_text,
        )
    return out


def targets_table(rows: list[dict], models: list[ModelSpec]) -> Tab:
    label = {m.key: m.label for m in models}
    t = Tab("Targets (issue #6)", ["target", "model", "measured", "required", "result", "why / numbers"])
    for r in rows:
        verdict = "n/a" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        t.add(r["target"], label[r["model"]], r["measured"], r["required"], verdict, r["why"])
    return t


def models_table(models: list[ModelSpec]) -> Tab:
    t = Tab(
        "Models",
        ["model", "what", "GFLOP/tile", "ONNX fp32 / fp16 / int8 MiB", "files"],
        right={2},
    )
    for m in models:
        sizes = " / ".join(f"{m.onnx[k].stat().st_size / 2**20:.1f}" for k in ("fp32", "fp16", "int8"))
        files = f"{_short(m.model_dir)}; {', '.join(_short(m.onnx[k]) for k in ('fp32', 'fp16', 'int8'))}"
        t.add(m.label, m.description, num(m.flops_per_tile / 1e9, 2), sizes, files)
    t.notes = [
        "GFLOP/tile: 2 x MACs of the Conv/MatMul/Gemm nodes of the ONNX graph at the model's tile size. fp16 and int8"
        " (static QDQ, per-channel weights, uint8 activations; int8 of the demo model calibrated on its training"
        " tiles, of the random model on synthetic tiles) come from export.onnx_export.export_model.",
    ]
    return t


def _short(p: Path) -> str:
    home = Path.home()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return "~/" + str(p.relative_to(home)) if p.is_relative_to(home) else str(p)


def fma_text(p: dict) -> str:
    f = p.get("fma_probe")
    if not f:
        return "not measured (no C compiler or no AVX2/FMA)"
    text = f"1 core: {f['fma256_1t']:.0f} GFLOP/s at 256 bits"
    if "fma512_1t" in f:
        text += f", {f['fma512_1t']:.0f} at 512 bits"
    text += f"; {f['threads']} threads: {f['fma256_nt']:.0f} at 256 bits"
    if "fma512_nt" in f:
        text += f", {f['fma512_nt']:.0f} at 512 bits"
    text += (
        f" (best of {f['runs']}; other work on the machine lowers the threaded numbers). Counting 2 FMA pipes at"
        f" the /proc/cpuinfo clock instead would give {p['two_pipes_at_nominal_gflops']:.0f} GFLOP/s"
    )
    return text


def machine_table(m: dict) -> Tab:
    p = m["peak"]
    t = Tab("Machine", ["item", "value"])
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["flags"].items())
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    for k, v in (
        ("CPU", f"{m['cpu_model']} ({m['cpu_vendor']}, family/model {m['cpu_family_model']})"),
        ("cores", f"{m['usable_cores']} usable (sched_getaffinity) of {m['logical_cpus']} logical"),
        ("flags", flags),
        ("memory", f"{m['memory_gib']} GiB ({m['memory_available_gib']} GiB available at start)"),
        ("load average at start", " / ".join(str(x) for x in m["load_average_1_5_15"])),
        ("fp32 peak", f"{p['fp32_peak_gflops']:.0f} GFLOP/s = {p['formula']}; {p['pipes_reason']}"),
        ("int8 peak", f"{p['int8_peak_gops']:.0f} GOP/s ({p['int8_factor']}x fp32: VNNI dot products)"),
        ("clock", f"{p['clock_mhz']:.0f} MHz, {p['clock_source']}; /proc/cpuinfo says {p['nominal_mhz']:.0f} MHz"),
        ("FMA loop (measured)", fma_text(p)),
        ("OS / Python", f"{m['os']} / Python {m['python']}"),
        ("libraries", versions),
        ("git commit", m["git_commit"]),
    ):
        t.add(k, v)
    return t


# ------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, images and sizes (a few minutes)")
    ap.add_argument("--only", default="a,b,c,e", help="sections to run, e.g. 'a,e' (d is part of a and b)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder for speed.json / speed.md")
    args = ap.parse_args(argv)
    only = set(args.only.replace(" ", "").split(","))
    plan = Plan.make(args.quick)
    started = time.time()
    machine = machine_info(CACHE)
    peak = machine["peak"]
    console.print(machine_table(machine).rich())
    prep: list[dict] = []
    _retries["left"] = plan.retry_budget
    models = prepare_models(prep)
    demo = models[0]
    tables: list[Tab] = [models_table(models)]
    console.print(tables[-1].rich())
    data: dict[str, Any] = {
        "benchmark": "benchmarks/speed.py",
        "quick": plan.quick,
        "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "plan": plan.__dict__,
        "machine": machine,
        "models": {
            m.key: {
                "label": m.label,
                "description": m.description,
                "model_dir": str(m.model_dir),
                "input_size": m.input_size,
                "cam_layer": m.cam_layer,
                "trained": m.trained,
                "onnx": {k: str(v) for k, v in m.onnx.items()},
                "onnx_mb": {k: round(v.stat().st_size / 2**20, 1) for k, v in m.onnx.items()},
                "gflop_per_tile": m.flops_per_tile / 1e9,
            }
            for m in models
        },
        "preparation": prep,
    }
    tp = bench_throughput(models, plan, peak) if "a" in only else []
    if tp:
        tables.append(throughput_table(tp, models))
        console.print(tables[-1].rich())
    scan = bench_scan(models, plan, peak) if "b" in only else []
    if scan:
        tables.append(scan_table(scan, models))
        console.print(tables[-1].rich())
    folder, cli = [], []
    if "c" in only:
        folder = bench_folder(demo, plan)
        tables.append(folder_table(folder, demo))
        console.print(tables[-1].rich())
        cli = bench_cli(models, plan)
        tables.append(cli_table(cli, models))
        console.print(tables[-1].rich())
    acc = None
    if "e" in only:
        acc = bench_accuracy(demo, plan)
        tables.append(accuracy_table(acc, demo))
        console.print(tables[-1].rich())
    tg = targets(tp, scan, acc, models, peak)
    tables.append(targets_table(tg, models))
    console.print(tables[-1].rich())
    try:
        end_load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        end_load = []
    data.update(
        throughput=tp,
        scan=scan,
        folder=folder,
        cli=cli,
        accuracy=acc,
        targets=tg,
        retries_used=plan.retry_budget - _retries["left"],
        seconds=round(time.time() - started, 1),
        load_average_at_end=end_load,
    )
    args.results.mkdir(parents=True, exist_ok=True)
    stem = "speed.quick" if plan.quick else "speed"
    (args.results / f"{stem}.json").write_text(json.dumps(no_nan(data), indent=1, allow_nan=False) + "\n")
    md = write_markdown(data, tables[:-1], tables[-1], machine)
    (args.results / f"{stem}.md").write_text(md)
    log(f"wrote {args.results / (stem + '.json')} and {stem}.md in {data['seconds'] / 60:.1f} min")


def no_nan(x: Any) -> Any:
    """NaN/inf -> None, recursively (strict JSON)."""
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {k: no_nan(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [no_nan(v) for v in x]
    return x


def write_markdown(data: dict, tables: list[Tab], target_tab: Tab, machine: dict) -> str:
    kind = "quick run (`make bench-quick`)" if data["quick"] else "full run (`make bench`)"
    lines = [
        "# Speed benchmark (`benchmarks/speed.py`)",
        "",
        f"{kind}, started {data['started']}, took {data['seconds'] / 60:.1f} min; load average at the end:"
        f" {' / '.join(str(x) for x in data['load_average_at_end'])}. Raw numbers: the `.json` file beside this one.",
        "",
        target_tab.markdown(),
        machine_table(machine).markdown(),
    ]
    lines += [t.markdown() for t in tables]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
