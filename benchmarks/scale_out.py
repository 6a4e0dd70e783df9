"""Scale-out overhead: `detect scan --engine ray` (2 actors x 1 model thread) against the local engine, same cores.

Both engines scan the same 1,000 synthetic 500x375 photos (a social-media photo's size; scenes of the
demo logo, cached) with the same ONNX model, by default the demo model's (128 px, head on mixed2;
benchmarks/web_speed.py's: `make demo`'s when it is there, else the architecture with random weights:
1,000 photos of the default real-photo model take ~40 minutes an engine on 2 AVX2 cores, and a lighter
model is the harder test of an engine's per-photo overhead), one after the other in this one run,
each a fresh `python cli.py scan ... --format jsonl --output F` process: the local engine as a user runs
it (2 decoding threads, onnxruntime on every core), the ray engine with no --address, so it starts a
Ray cluster on this machine (sized to it: 2 CPUs) and two actors that hold one CPU and one model
thread each. Measured: end-to-end wall time (start-up, cluster start and model loads included) and the
steady rate between the first and the last record (the output file is watched as it grows); the ratio
ray / local of both; the two outputs' verdicts are compared (they must agree).

Timing rule: run it on an otherwise idle machine. It waits (up to --wait-s, default 20 minutes) until
the 1-minute load average is below 0.5 and records whether it got a quiet machine; the load during each
run is recorded as busy cores (all of them, ours included) from /proc/stat.

    .venv/bin/python benchmarks/scale_out.py [--model MODEL.onnx] [--photos 1000]

Writes benchmarks/results/scale_out.json and prints the table, with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _bench_machine import machine_info  # noqa: E402
from _bench_run import _busy_seconds  # noqa: E402

CACHE = Path(os.environ.get("DETECT_CACHE", Path.home() / ".cache" / "logo-detector")) / "scale_out"
RESULT = HERE / "results" / "scale_out.json"
TARGET_RATIO = 0.85
QUIET_LOAD = 0.5
#: Stated prices per vCPU-hour (USD), for the cost model: about what a compute-optimised x86 instance
#: lists on demand, and its usual spot discount. Assumptions, not quotes: pass your own with --price.
PRICE_ON_DEMAND = 0.05
PRICE_SPOT = 0.02
GOOGLE_VISION_PER_MILLION = 1500.0  # logo detection, $1.50 per 1,000 images (the figure)


def photos(n: int) -> Path:
    """The folder of n synthetic 500x375 photos (made once, then cached)."""
    from _bench_data import scene_images

    return scene_images(500, 375, n, folder=CACHE / f"scenes-500x375-{n}")[0].parent


def default_model() -> tuple[Path, str]:
    """The demo model (or its architecture with random weights), exported to ONNX fp32 (made once)."""
    from photo_speed import export
    from web_speed import model_dir

    folder, what = model_dir(None)
    return export(folder, "none")[0], what


def wait_quiet(limit_s: float, poll_s: float = 30.0) -> dict[str, Any]:
    """Wait until the 1-minute load average is below QUIET_LOAD (at most limit_s); what was seen."""
    t0, first = time.monotonic(), os.getloadavg()[0]
    while os.getloadavg()[0] >= QUIET_LOAD and time.monotonic() - t0 < limit_s:
        print(f"load {os.getloadavg()[0]:.2f} >= {QUIET_LOAD}: waiting for a quiet machine", flush=True)
        time.sleep(poll_s)
    load = os.getloadavg()[0]
    return {
        "load_1min_at_first_check": round(first, 2),
        "load_1min_at_start": round(load, 2),
        "waited_s": round(time.monotonic() - t0),
        "quiet": load < QUIET_LOAD,
    }


def timed_scan(args: list[str], out: Path, n: int, timeout: float = 7200) -> dict[str, Any]:
    """Run one `cli.py scan`, watching its JSONL grow: wall s, when the first record came, the end-to-end
    rate, the steady rate (between 10% and 90% of the records: no start-up, no tail), busy cores."""
    out.unlink(missing_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    err = out.with_suffix(".stderr")
    busy0, t0 = _busy_seconds(), time.monotonic()
    arrivals: list[tuple[float, int]] = []  # (seconds, records so far), at each change
    with open(err, "wb") as log:
        cmd = [sys.executable, str(ROOT / "cli.py"), "scan", *args, "--format", "jsonl", "--output", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=ROOT)
        while proc.poll() is None and time.monotonic() - t0 < timeout:
            lines = out.read_bytes().count(b"\n") if out.exists() else 0
            if lines > (arrivals[-1][1] if arrivals else 0):
                arrivals.append((time.monotonic() - t0, lines))
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    wall = time.monotonic() - t0
    lines = out.read_bytes().count(b"\n") if out.exists() else 0
    if lines > (arrivals[-1][1] if arrivals else 0):
        arrivals.append((wall, lines))

    def when(k: float) -> float | None:
        return next((t for t, c in arrivals if c >= k), None)

    t10, t90 = when(0.1 * n), when(0.9 * n)
    steady = 0.8 * n / (t90 - t10) if t10 is not None and t90 is not None and t90 > t10 else None
    return {
        "returncode": proc.returncode,
        "records": lines,
        "wall_s": round(wall, 2),
        "first_record_s": round(arrivals[0][0], 2) if arrivals else None,
        "images_per_s": round(n / wall, 3),
        "steady_images_per_s": None if steady is None else round(steady, 3),
        "busy_cores": round((_busy_seconds() - busy0) / wall, 2),
        "stderr_tail": err.read_text(errors="replace")[-600:],
    }


def cost_per_million(s_per_photo: float, overhead: float) -> dict[str, Any]:
    """vCPU-hours and dollars for 1,000,000 photos at s_per_photo on one vCPU, with the Ray engine's
    measured overhead (its steady rate / the local engine's, at most 1: a long run pays start-up once),
    and the 1-hour sizing: vCPUs (and 16-vCPU nodes) to scan them in an hour."""
    hours = 1e6 * s_per_photo / 3600 / overhead
    return {
        "vcpu_hours_per_million": round(hours, 1),
        "usd_per_million_on_demand": round(hours * PRICE_ON_DEMAND, 2),
        "usd_per_million_spot": round(hours * PRICE_SPOT, 2),
        "share_of_google_vision_on_demand": round(hours * PRICE_ON_DEMAND / GOOGLE_VISION_PER_MILLION, 4),
        "vcpus_for_a_million_in_an_hour": math.ceil(hours),
        "nodes_16_vcpu_for_a_million_in_an_hour": math.ceil(hours / 16),
    }


def per_core_costs(n: int, overhead: float) -> dict[str, Any]:
    """Seconds per 500x375 photo of the default real-photo model (224 px, head on mixed6) on ONE core (one
    onnxruntime thread, as each actor runs), tiles and dense, fp32 and int8: the cost model's inputs.

    The model and photos are benchmarks/photo_speed.py's (its FlickrLogos model when that benchmark has
    trained one, else the same architecture with random weights on synthetic scenes; speed hardly
    depends on the weights); int8 is forced here (static QDQ, calibrated on synthetic tiles when no data)."""
    import statistics

    from photo_speed import export, model_and_photos

    from detector.api import Detector
    from detector.backends.onnx_backend import OnnxBackend
    from detector.pipeline.options import ScanOptions
    from detector.tfquiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    model_dir, files, what = model_and_photos(n)
    rows = []
    for quantize in ("none", "int8"):
        onnx, precision = export(model_dir, quantize)
        backend = OnnxBackend(onnx, threads=1)
        for mode in ("tiles", "dense"):
            det = Detector(backend, ScanOptions(mode=mode))
            det.scan(files[0])
            times = []
            for p in files:
                t0 = time.perf_counter()
                det.scan(p)
                times.append(time.perf_counter() - t0)
            s = statistics.median(times)
            rows.append(
                {
                    "precision": precision,
                    "mode": mode,
                    "s_per_photo_1core": round(s, 3),
                    "photos_per_s_per_core": round(1 / s, 3),
                    **cost_per_million(s, overhead),
                }
            )
    return {
        "model": what,
        "model_dir": str(model_dir),
        "photos": len(files),
        "rows": rows,
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def verdicts(path: Path) -> dict[str, tuple]:
    out = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out[rec["path"]] = (rec["has_logo"], tuple(rec["labels"]), tuple(rec["errors"]), len(rec["boxes"]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="The ONNX model (default: the demo model's).")
    ap.add_argument("--photos", type=int, default=1000)
    ap.add_argument("--wait-s", type=float, default=1200, help="Longest wait for a quiet machine.")
    ap.add_argument("--out", type=Path, default=RESULT)
    ap.add_argument("--cost-photos", type=int, default=10, help="Photos per row of the per-core cost table (0: skip).")
    a = ap.parse_args()
    a.model_what = "given"
    if a.model is None:
        a.model, a.model_what = default_model()
    if not a.model.is_file():
        print(f"error: no ONNX model at {a.model}")
        return 2
    folder = photos(a.photos)
    quiet = wait_quiet(a.wait_s)
    common = [str(folder), "--model", str(a.model)]
    work = CACHE / "runs"
    work.mkdir(parents=True, exist_ok=True)
    local = timed_scan(common, work / "local.jsonl", a.photos)
    ray = timed_scan([*common, "--engine", "ray", "--actors", "2", "--actor-cpus", "1"], work / "ray.jsonl", a.photos)
    agree = verdicts(work / "local.jsonl") == verdicts(work / "ray.jsonl")
    report = _report(a, quiet, local, ray, agree)
    if a.cost_photos:
        report["per_core"] = per_core_costs(a.cost_photos, min(1.0, report["ratio_steady"] or 1.0))
        report["prices_usd_per_vcpu_hour"] = {"on_demand": PRICE_ON_DEMAND, "spot": PRICE_SPOT}
        report["google_vision_usd_per_million"] = GOOGLE_VISION_PER_MILLION
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    _print(report)
    return 0 if local["returncode"] == ray["returncode"] == 0 and agree else 1


def _report(a: argparse.Namespace, quiet: dict, local: dict, ray: dict, agree: bool) -> dict[str, Any]:
    def ratio(key: str) -> float | None:
        return round(ray[key] / local[key], 3) if ray.get(key) and local.get(key) else None

    from detector import Detector

    m = Detector.load(a.model).meta  # after the runs: this process stays out of their way
    meta = {"input_size": m.input_size, "cam_layer": m.cam_layer, "classes": m.classes}
    return {
        "benchmark": "scale-out",
        "photos": a.photos,
        "photo_size": "500x375",
        "model": str(a.model),
        "model_what": a.model_what,
        "model_meta": meta,
        "local": {"engine": "local (2 decoding threads, onnxruntime on both cores)", **local},
        "ray": {"engine": "ray (local cluster of 2 CPUs, 2 actors x 1 model thread)", **ray},
        "ratio_end_to_end": ratio("images_per_s"),
        "ratio_steady": ratio("steady_images_per_s"),
        "target_ratio": TARGET_RATIO,
        "meets_target": (ratio("images_per_s") or 0) >= TARGET_RATIO,
        "verdicts_agree": agree,
        "quiet_machine": quiet,
        "machine": machine_info(CACHE),
    }


def _print(r: dict[str, Any]) -> None:
    print(f"\n{r['photos']} photos {r['photo_size']}, {r['model']} ({r['model_meta']})")
    print(f"CPU: {r['machine']['cpu_model']}, {r['machine']['usable_cores']} cores; quiet: {r['quiet_machine']}")
    print(f"{'engine':<8} {'wall s':>8} {'img/s':>8} {'steady img/s':>13} {'busy cores':>11}")
    for k in ("local", "ray"):
        e = r[k]
        print(f"{k:<8} {e['wall_s']:>8} {e['images_per_s']:>8} {e['steady_images_per_s']!s:>13} {e['busy_cores']:>11}")
    for row in r.get("per_core", {}).get("rows", []):
        print(
            f"per vCPU: {row['precision']:<5} {row['mode']:<6} {row['s_per_photo_1core']:>6} s/photo, "
            f"{row['vcpu_hours_per_million']:>7} vCPU-h per 1M = ${row['usd_per_million_on_demand']} on demand, "
            f"${row['usd_per_million_spot']} spot; {row['nodes_16_vcpu_for_a_million_in_an_hour']} x 16-vCPU "
            "nodes for 1M in an hour"
        )
    print(
        f"ratio ray/local: end to end {r['ratio_end_to_end']}, steady {r['ratio_steady']} "
        f"(target >= {r['target_ratio']}); verdicts agree: {r['verdicts_agree']}"
    )


if __name__ == "__main__":
    sys.exit(main())
