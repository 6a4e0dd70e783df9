"""`detect report` on 1,000,000 synthetic result lines: wall time and peak memory (target < 300 MiB).

The lines are written once to a temporary file in the form `detect scan --format jsonl` writes
(schema scan@2: 0-3 boxes of five brands with their exposure fields, thresholds, one error record in
500, and a tenth of the lines as video frames with their appearance and video records). The real
command line then runs in a subprocess (`python cli.py report FILE --out DIR`), its resident set
size polled from /proc every 0.1 s; the peak is the kernel's high-water mark (VmHWM) of that process.
The gallery's photos do not exist, so its cards are placeholders: crops are read only for the
gallery's N anyway, never for the million.

    .venv/bin/python benchmarks/report_bench.py [--lines 1000000] [--note "machine shared with ..."]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BRANDS = ["acme", "globex", "initech", "umbrella", "hooli"]
MIB = 1024 * 1024


def write_lines(path: Path, n: int, seed: int = 0) -> int:
    """n JSONL lines of scan records; returns the file size in bytes."""
    from detector.report.exposure import exposure_fields

    rng = np.random.default_rng(seed)
    model = {"name": "model", "sha256": "0" * 64, "backend": "onnx (CPUExecutionProvider, fp32)"}
    thresholds = dict.fromkeys(BRANDS, 0.9)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        frame = 0
        while written < n:
            i = written
            video = i % 10 == 9
            if i % 500 == 250:
                rec = {"schema": "logo-detector/scan@2", "path": f"photos/{i // 1000:04d}/{i}.jpg", "errors":
                       ["not an image (unrecognised format)"], "boxes": [], "labels": [], "scores": {}}  # fmt: skip
            else:
                w, h = (1280, 720) if video else (640, 480)
                boxes, exposure, labels = [], [], set()
                for _ in range(int(rng.integers(0, 4))):
                    b = BRANDS[int(rng.integers(len(BRANDS)))]
                    bw, bh = rng.uniform(10, w / 3), rng.uniform(10, h / 3)
                    x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
                    s = round(float(rng.uniform(0.9, 1.0)), 4)
                    box = {"label": b, "score": s, "x1": round(x1, 1), "y1": round(y1, 1), "x2": round(x1 + bw, 1),
                           "y2": round(y1 + bh, 1), "scale": 1.0}  # fmt: skip
                    e = exposure_fields((box["x1"], box["y1"], box["x2"], box["y2"]), s, w, h, None)
                    e["sharpness"] = round(float(rng.uniform(0.2, 0.95)), 4)
                    e["laplacian_variance"] = round(100 * e["sharpness"] / (1 - e["sharpness"]), 1)
                    boxes.append(box)
                    exposure.append(e)
                    labels.add(b)
                scores = {
                    b: (round(float(rng.uniform(0.9, 1)), 4) if b in labels else round(float(rng.uniform(0, 0.95)), 4))
                    for b in BRANDS
                }
                rec = {"schema": "logo-detector/scan@2", "path": f"photos/{i // 1000:04d}/{i}.jpg", "width": w,
                       "height": h, "scores": scores, "has_logo": bool(labels), "labels": sorted(labels),
                       "boxes": boxes, "errors": [], "notes": [],
                       "timings_ms": {"tiling": 5.1, "model": 300.2, "boxes": 20.3, "tiles": 206.0},
                       "model": model, "sha256": f"{i:064x}", "exposure": exposure,
                       "thresholds": thresholds}  # fmt: skip
                if video:
                    rec["path"] = f"videos/{frame // 3600:03d}.mp4"
                    rec |= {"frame": frame % 3600 * 25, "time_s": frame % 3600 * 1.0}
                    frame += 1
            f.write(json.dumps(rec) + "\n")
            written += 1
            if video and frame % 3600 == 0 and written < n:  # a video ends: its appearance and video records
                vpath = f"videos/{frame // 3600 - 1:03d}.mp4"
                for b in BRANDS[:3]:
                    f.write(json.dumps({"schema": "logo-detector/scan@2", "record": "appearance", "path": vpath,
                                        "label": b, "start_s": 100.0, "end_s": 160.0, "duration_s": 60.0,
                                        "peak_prominence": 0.5, "frames": 60}) + "\n")  # fmt: skip
                    written += 1
                f.write(json.dumps({"schema": "logo-detector/scan@2", "record": "video", "path": vpath,
                                    "sha256": "", "fps": 25.0, "duration_s": 3600.0, "every_s": 1.0,
                                    "samples": 3600}) + "\n")  # fmt: skip
                written += 1
    return path.stat().st_size


def _status_kib(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def run_report(results: Path, out: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "cli.py"), "report", str(results), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    peak_hwm, samples = 0.0, []
    while proc.poll() is None:
        hwm, rss = _status_kib(proc.pid, "VmHWM"), _status_kib(proc.pid, "VmRSS")
        if hwm:
            peak_hwm = max(peak_hwm, hwm)
        if rss:
            samples.append((round(time.perf_counter() - t0, 2), round(rss / 1024, 1)))
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"detect report failed ({proc.returncode}): {stderr.strip()}")
    mid = [m for t, m in samples if t > wall / 4]
    return {
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(peak_hwm / 1024, 1),
        "rss_after_first_quarter_mib": [min(mid), max(mid)] if mid else None,
        "rss_samples": samples[:: max(1, len(samples) // 60)],
        "stdout": stdout.strip(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--note", default="", help="how the machine was shared during the run")
    ap.add_argument("--out", type=Path, default=RESULTS / "report.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        results = Path(tmp) / "results.jsonl"
        t0 = time.perf_counter()
        size = write_lines(results, args.lines)
        gen_s = time.perf_counter() - t0
        run = run_report(results, Path(tmp) / "report")
        page_bytes = (Path(tmp) / "report" / "index.html").stat().st_size
        summary = json.loads((Path(tmp) / "report" / "summary.json").read_text())
    out = {
        "lines": args.lines,
        "file_mib": round(size / MIB, 1),
        "generate_s": round(gen_s, 1),
        **run,
        "lines_per_s": round(args.lines / run["wall_s"]),
        "target_peak_mib": 300,
        "met": run["peak_rss_mib"] < 300,
        "totals": summary["totals"],
        "index_html_kib": round(page_bytes / 1024, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "note": args.note,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(
        f"detect report on {args.lines:,} lines ({out['file_mib']} MiB of JSONL): {run['wall_s']} s "
        f"({out['lines_per_s']:,} lines/s), peak RSS {run['peak_rss_mib']} MiB (target < 300: "
        f"{'met' if out['met'] else 'NOT met'}); RSS after the first quarter {run['rss_after_first_quarter_mib']} MiB"
    )
    if args.note:
        print(f"note: {args.note}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
