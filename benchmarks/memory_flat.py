"""Does memory stay flat while `detect scan DIR --format jsonl --output FILE` works through 10,000 images?

Measured: the resident set size (RSS) of the scanning process against the number of images done. The
images are 160x120 JPEGs (procedural backgrounds, the demo logo pasted into half of them, and a few
deliberately broken files: empty, truncated, text, random bytes), generated once into a cache folder
outside the project (`~/.cache/logo-detector/bench/`), in ten subfolders so the folder walk is recursive.

By default the real command line runs in a subprocess, with the ONNX backend (no TensorFlow in the
process), and this script polls its RSS (/proc/PID/status) and the lines of its JSONL output every
0.2 s; `--in-process` runs the same library path (`detector.results.folders.scan_many` + `ScanWriter`) in this
process and samples its own RSS from a result callback. The peak is the kernel's high-water mark.

Verdict: "flat" when the RSS grows by less than `--bound` MiB (default 20) over the second half of the
run (least-squares slope over the second half's samples, times the half's length); the first half
holds the warm-up (allocator arenas, onnxruntime buffers). The JSONL must have one line per image,
broken files included (as results with `errors`).

Scanning uses `--scales 1,0.5` (three tiles per image, two pyramid levels): the benchmark is about
memory across many images, not the work per image (the default pyramid gives ~200 tiles at 160x120).

    .venv/bin/detect export demo-output/model --out /tmp/bench-demo.onnx    # once
    .venv/bin/python benchmarks/memory_flat.py [--images 10000 | --quick] [--model /tmp/bench-demo.onnx]
        [--in-process] [--bound 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_CACHE = Path.home() / ".cache" / "logo-detector" / "bench"
DEFAULT_MODEL = Path("/tmp/bench-demo.onnx")
WIDTH, HEIGHT = 160, 120
SUBFOLDERS = 10
MIB = 1024 * 1024
#: The kinds of broken file mixed in, in turn.
BROKEN_KINDS = ("empty", "truncated", "text", "random-bytes", "header-only")


# ---- the images ---------------------------------------------------------------------------------------


def broken_indices(n: int) -> set[int]:
    """Where the broken files go: about one in a thousand (at least five), spread evenly."""
    k = max(len(BROKEN_KINDS), n // 1000)
    return {int(i) for i in np.linspace(n // (2 * k), n - 1, k)}


def _good_jpeg(i: int, logo: np.ndarray, seed: int) -> bytes:
    import cv2

    from detector.synth.compose import alpha_paste, procedural_background

    rng = np.random.default_rng([seed, i])
    img = procedural_background(rng, HEIGHT, WIDTH)
    if rng.random() < 0.5:
        side = int(rng.integers(24, 90))
        patch = cv2.resize(logo, (side, side), interpolation=cv2.INTER_AREA)
        x, y = int(rng.integers(-side // 4, WIDTH - side)), int(rng.integers(-side // 4, HEIGHT - side))
        alpha_paste(img, patch, x, y)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def _broken(kind: str, good: bytes, rng: np.random.Generator) -> bytes:
    if kind == "empty":
        return b""
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "text":
        return b"this is not an image, whatever its name says\n"
    if kind == "random-bytes":
        return rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return good[:20]  # "header-only": the JPEG start marker and not much else


def make_images(n: int, cache: Path, seed: int = 0) -> tuple[Path, int]:
    """n files (generated once, reused while the marker says they are complete); returns (folder, broken)."""
    from detector.synth.demo_logo import demo_logo
    from detector.synth.scenes import trim_alpha

    folder = cache / f"memory-flat-{n}-s{seed}-v1"
    broken = broken_indices(n)
    if (folder / ".complete").is_file():
        return folder, len(broken)
    logo = trim_alpha(demo_logo(128))
    kinds = {i: BROKEN_KINDS[k % len(BROKEN_KINDS)] for k, i in enumerate(sorted(broken))}
    t0 = time.monotonic()
    for i in range(n):
        sub = folder / f"d{i * SUBFOLDERS // n:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        data = _good_jpeg(i, logo, seed)
        if i in kinds:
            data = _broken(kinds[i], data, np.random.default_rng(i))
        (sub / f"img{i:06d}.jpg").write_bytes(data)
    (folder / ".complete").write_text(f"{n} files, {len(broken)} broken, {time.monotonic() - t0:.1f} s\n")
    return folder, len(broken)


# ---- measuring ----------------------------------------------------------------------------------------


@dataclass
class Sample:
    images: int
    rss_mib: float
    seconds: float


def _status_kib(pid: int | str, field: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


try:
    import psutil
except ImportError:  # not a dependency: /proc does as well on Linux
    psutil = None


def rss_mib(pid: int | str = "self") -> float | None:
    """Resident set size in MiB: psutil when installed, else /proc/PID/status."""
    if psutil is None:
        kib = _status_kib(pid, "VmRSS")
        return None if kib is None else kib / 1024
    try:
        return psutil.Process(None if pid == "self" else int(pid)).memory_info().rss / MIB
    except psutil.Error:  # the process has just ended
        return None


class LineCounter:
    """Counts the lines of a file another process is appending to, reading only what is new."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = path, 0, 0

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return 0
        self.offset += len(chunk)
        self.lines += chunk.count(b"\n")
        return self.lines


def detect_command() -> list[str]:
    exe = Path(sys.executable).parent / "detect"
    return [str(exe)] if exe.is_file() else [sys.executable, "-c", "from cli import app; app()"]


def run_cli(folder: Path, model: Path, out: Path, scales: str, interval: float) -> tuple[list[Sample], float, str]:
    """`detect scan FOLDER --format jsonl --output OUT` in a subprocess; (samples, peak MiB, its summary)."""
    cmd = [*detect_command(), "scan", str(folder), "--model", str(model), "--format", "jsonl", "--output", str(out)]
    cmd += ["--scales", scales]
    err_path = out.with_suffix(".stderr")
    samples: list[Sample] = []
    counter = LineCounter(out)
    peak_kib = 0.0
    t0 = time.monotonic()
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        while proc.poll() is None:
            rss = rss_mib(proc.pid)
            peak_kib = max(peak_kib, _status_kib(proc.pid, "VmHWM") or 0.0)
            done = counter.poll()
            if rss is not None:
                samples.append(Sample(done, rss, time.monotonic() - t0))
            time.sleep(interval)
    # the child's own high-water mark, from the kernel, now that it has been waited for
    peak = max(peak_kib, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    text = err_path.read_text(errors="replace").strip().splitlines()
    if proc.returncode != 0:
        raise SystemExit(f"detect scan failed (exit {proc.returncode}): {' '.join(text[-3:])}")
    return samples, peak, text[-1] if text else ""


def run_in_process(folder: Path, model: Path, out: Path, scales: str, every: int) -> tuple[list[Sample], float, str]:
    """The library path of `detect scan` (list_images -> scan_many -> ScanWriter) in this process."""
    from rich.console import Console

    from detector.api import Detector
    from detector.pipeline.options import ScanOptions
    from detector.results.folders import list_images, scan_many
    from detector.results.writer import OutputOptions, ScanWriter

    opts = ScanOptions(scales=tuple(float(s) for s in scales.split(",")))
    det = Detector.load(model, "auto", opts)
    paths = list_images([folder])
    writer = ScanWriter(OutputOptions(format="jsonl", output=str(out)), det.meta, [folder], Console(stderr=True))
    samples: list[Sample] = []
    t0 = time.monotonic()
    done = 0

    def on_result(r: object, pixels: object) -> None:
        nonlocal done
        writer.add(r, pixels)
        done += 1
        if done % every == 0 or done == 1:
            samples.append(Sample(done, rss_mib() or 0.0, time.monotonic() - t0))

    try:
        summary = scan_many(det, paths, on_result, workers=2, progress=False)
    finally:
        writer.close()
    samples.append(Sample(done, rss_mib() or 0.0, time.monotonic() - t0))
    peak = (_status_kib("self", "VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
    text = f"scanned {summary.images} image(s): {summary.with_logo} with a logo, {summary.errors} error(s)"
    return samples, peak, text


def check_jsonl(path: Path, n: int, n_broken: int) -> dict:
    lines, errors, paths, bad = 0, 0, set(), 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            lines += 1
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            paths.add(rec["path"])
            errors += bool(rec.get("errors"))
    ok = lines == n and len(paths) == n and errors == n_broken and bad == 0
    return {
        "lines": lines,
        "distinct_paths": len(paths),
        "with_errors": errors,
        "broken_files": n_broken,
        "bad_json": bad,
        "ok": ok,
    }


def second_half_fit(samples: list[Sample], n: int) -> tuple[float, float, float]:
    """(slope MiB per 1,000 images, fitted growth MiB over the second half, raw last-minus-midpoint MiB)."""
    half = [s for s in samples if s.images >= n / 2]
    if len(half) < 2:
        return 0.0, 0.0, 0.0
    x = np.array([s.images for s in half], float)
    y = np.array([s.rss_mib for s in half], float)
    slope = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else 0.0
    return slope * 1000, slope * (n - n / 2), half[-1].rss_mib - half[0].rss_mib


def table_rows(samples: list[Sample], n: int, every: int) -> list[Sample]:
    """The first sample at or past each multiple of `every` images (and the first and last samples)."""
    rows = [samples[0]]
    for k in range(every, n + 1, every):
        s = next((s for s in samples if s.images >= k), None)
        if s is not None and s.images > rows[-1].images:
            rows.append(s)
    if samples[-1].images > rows[-1].images:
        rows.append(samples[-1])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--quick", action="store_true", help="1,000 images")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="an exported .onnx (or a model directory)")
    p.add_argument("--scales", default="1,0.5")
    p.add_argument("--in-process", action="store_true", help="scan_many in this process instead of the CLI")
    p.add_argument("--bound", type=float, default=20.0, help="MiB of growth over the second half still 'flat'")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--work", type=Path, default=Path("/tmp/logo-detector-memory-flat"))
    p.add_argument("--interval", type=float, default=0.2, help="seconds between RSS samples of the CLI process")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/memory-flat*.json)")
    args = p.parse_args()
    n = 1000 if args.quick else args.images
    if not args.model.exists():
        raise SystemExit(f"{args.model} not found: `.venv/bin/detect export demo-output/model --out {args.model}`")
    every = max(1, n // 10)

    t0 = time.monotonic()
    folder, n_broken = make_images(n, args.cache)
    gen_s = time.monotonic() - t0
    print(f"images: {n} in {folder} ({n_broken} broken), ready in {gen_s:.1f} s", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.work / f"scan-{n}.jsonl"
    out.unlink(missing_ok=True)
    mode = "in-process (scan_many + ScanWriter)" if args.in_process else "CLI subprocess (detect scan)"
    print(f"scanning with {args.model} ({mode}, scales {args.scales})...", flush=True)
    t1 = time.monotonic()
    if args.in_process:
        samples, peak, summary = run_in_process(folder, args.model, out, args.scales, max(1, n // 100))
    else:
        stop = threading.Event()  # a heartbeat for long runs: one line a minute
        counter = LineCounter(out)

        def heartbeat() -> None:
            while not stop.wait(60):
                print(f"  ... {counter.poll()} / {n} images, {time.monotonic() - t1:.0f} s", flush=True)

        threading.Thread(target=heartbeat, daemon=True).start()
        try:
            samples, peak, summary = run_cli(folder, args.model, out, args.scales, args.interval)
        finally:
            stop.set()
    scan_s = time.monotonic() - t1
    samples = [s for s in samples if s.images > 0]  # before the first result: start-up, not scanning
    if not samples:
        raise SystemExit("no RSS samples were taken")
    check = check_jsonl(out, n, n_broken)
    slope, growth, raw = second_half_fit(samples, n)
    flat = growth < args.bound
    rows = table_rows(samples, n, every)
    first = rows[0].rss_mib

    print()
    print("| images done | RSS MiB | change MiB | seconds |")
    print("|---:|---:|---:|---:|")
    for s in rows:
        print(f"| {s.images:,} | {s.rss_mib:.1f} | {s.rss_mib - first:+.1f} | {s.seconds:.0f} |")
    print()
    print(f"peak RSS (high-water mark): {peak:.1f} MiB")
    print(f"second half: slope {slope:+.2f} MiB per 1,000 images, fitted growth {growth:+.1f} MiB, raw {raw:+.1f} MiB")
    print(f"verdict: {'flat' if flat else 'NOT flat'} (growth over the second half < {args.bound:g} MiB)")
    print(
        f"JSONL: {check['lines']:,} lines, {check['distinct_paths']:,} paths, {check['with_errors']} with errors "
        f"({check['broken_files']} broken files) -> {'ok' if check['ok'] else 'MISMATCH'}"
    )
    print(f"scan: {scan_s:.0f} s ({n / scan_s:.1f} images/s); {summary}")

    res = {
        "what": "RSS of `detect scan DIR --format jsonl --output FILE` vs images done",
        "mode": "in-process" if args.in_process else "cli",
        "images": n,
        "broken_files": n_broken,
        "image_size": [WIDTH, HEIGHT],
        "scales": args.scales,
        "model": str(args.model),
        "samples_every": f"{args.interval} s" if not args.in_process else f"{max(1, n // 100)} images",
        "table": [{"images": s.images, "rss_mib": round(s.rss_mib, 1), "seconds": round(s.seconds, 1)} for s in rows],
        "samples_images_rss_mib": "__SAMPLES__",  # one compact line, filled in below
        "peak_rss_mib": round(peak, 1),
        "second_half_slope_mib_per_1000": round(slope, 3),
        "second_half_growth_mib": round(growth, 2),
        "second_half_raw_change_mib": round(raw, 2),
        "bound_mib": args.bound,
        "verdict": "flat" if flat else "not flat",
        "jsonl": check,
        "scan_seconds": round(scan_s, 1),
        "images_per_second": round(n / scan_s, 2),
        "generate_seconds": round(gen_s, 1),
        "cli_summary": summary,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
    }
    path = args.out or RESULTS / ("memory-flat.json" if n == 10_000 else f"memory-flat-{n}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    thinned = [[s.images, round(s.rss_mib, 1)] for s in samples[:: max(1, len(samples) // 400)]]
    path.write_text(json.dumps(res, indent=2).replace('"__SAMPLES__"', json.dumps(thinned)) + "\n")
    print(f"written {path}")
    if not check["ok"] or not flat:
        sys.exit(1)


if __name__ == "__main__":
    main()
