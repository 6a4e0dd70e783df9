"""Hostile input, case by case: what `detect scan` and `detect serve` make of each file of the corpus
in tests/hostile_corpus.py, how long it takes and the peak memory it costs.

CLI: one `detect scan FOLDER --format jsonl` process per case (the case alone in its folder, so the
folder walk's skips show too); its peak RSS from wait4. Server: one `detect serve` process; each
case is one `/v1/scan/batch` request; the server's peak RSS per case from /proc (VmHWM, reset before
each case through clear_refs). Prints one row per case and writes benchmarks/results/hostile.json.

    .venv/bin/python benchmarks/hostile.py [--model demo-output/model.onnx]
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

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the hostile corpus lives with the tests (tests/hostile_corpus.py)

from detector.serve.process import ServerProcess  # noqa: E402
from tests import hostile_corpus as hc  # noqa: E402

LIMITS = ["--max-pixels", str(hc.MAX_PIXELS)]


def outcome(records: list[dict]) -> str:
    if not records:
        return "skip"
    errors = records[0]["errors"]
    if errors:
        return "error: " + errors[0][:60]
    notes = records[0].get("notes") or []
    return f"ok ({int(records[0]['timings_ms'].get('tiles', 0))} windows{', coarsened' if notes else ''})"


def run_cli_case(model: Path, folder: Path, out: Path) -> tuple[str, float, float, int]:
    cmd = [sys.executable, str(ROOT / "cli.py"), "scan", str(folder), "--model", str(model), "--format", "jsonl"]
    cmd += ["--output", str(out), *LIMITS, "--max-file-mb", str(hc.MAX_FILE_MB)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, rusage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - t0
    records = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return outcome(records), seconds, rusage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_server_case(server: ServerProcess, name: bytes, data: bytes) -> tuple[str, float, float]:
    Path(f"/proc/{server.proc.pid}/clear_refs").write_text("5")
    t0 = time.monotonic()
    r = httpx.post(
        server.url + "/v1/scan/batch", files=[("files", (name.decode("utf-8", "replace"), data))], timeout=600
    )
    seconds = time.monotonic() - t0
    if r.status_code != 200:
        return f"HTTP {r.status_code} {r.json()['error']['code']}", seconds, peak_mib(server.proc.pid)
    records = [json.loads(x) for x in r.text.splitlines() if x.strip()]
    return outcome(records), seconds, peak_mib(server.proc.pid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "demo-output" / "model.onnx")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hostile.json")
    args = ap.parse_args()
    if not args.model.exists():
        sys.exit(f"error: no model at {args.model}: run `make demo`, or pass --model MODEL_DIR_OR_ONNX")
    rows = []
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        tmp_path = Path(tmp)
        cases = hc.cases()
        goods = list(hc.good_images().items())[:1]
        entries = [(hc.Case(name, "ok", hc._write(data)), data) for name, data in goods] + [(c, None) for c in cases]
        print(f"{'case':<34} {'CLI outcome':<46} {'s':>6} {'MiB':>6}  {'server outcome':<46} {'s':>6} {'MiB':>6}")
        server_log = tmp_path / "server.log"
        srv_args = ["--max-upload-mb", str(hc.UPLOAD_MB), *LIMITS, "--no-access-log"]
        with ServerProcess(args.model, *srv_args, log_path=server_log) as server:
            for i, (case, _) in enumerate(entries):
                folder = tmp_path / f"case-{i:03d}"
                folder.mkdir()
                path = os.fsencode(folder) + b"/" + case.name
                os.makedirs(os.path.dirname(path), exist_ok=True)
                case.make(path)
                if case.name == b"link-to-good.png":  # its target, beside it
                    hc._write(hc.encode(hc._photo(8), "PNG"))(os.fsencode(folder) + b"/png-named.jpg")
                cli = run_cli_case(args.model, folder, tmp_path / f"out-{i:03d}.jsonl")
                srv = ("-", 0.0, 0.0)
                if case.server and case.expect != "skip":
                    with open(path, "rb") as f:
                        srv = run_server_case(server, case.name, f.read())
                row = {
                    "case": case.label,
                    "expect": case.expect,
                    "cli": {
                        "outcome": cli[0],
                        "seconds": round(cli[1], 2),
                        "peak_rss_mib": round(cli[2], 1),
                        "exit_code": cli[3],
                    },
                    "server": {"outcome": srv[0], "seconds": round(srv[1], 3), "peak_rss_mib": round(srv[2], 1)},
                }
                rows.append(row)
                print(
                    f"{case.label[:34]:<34} {cli[0][:46]:<46} {cli[1]:6.2f} {cli[2]:6.0f}  "
                    f"{srv[0][:46]:<46} {srv[1]:6.2f} {srv[2]:6.0f}",
                    flush=True,
                )
    report = {
        "model": str(args.model),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "limits": {"max_pixels": hc.MAX_PIXELS, "max_file_mb": hc.MAX_FILE_MB, "max_upload_mb": hc.UPLOAD_MB},
        "cases": rows,
        "worst": {
            "cli_seconds": max(r["cli"]["seconds"] for r in rows),
            "cli_peak_rss_mib": max(r["cli"]["peak_rss_mib"] for r in rows),
            "server_seconds": max(r["server"]["seconds"] for r in rows),
            "server_peak_rss_mib": max(r["server"]["peak_rss_mib"] for r in rows),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"worst: {report['worst']}\nwrote {args.out}")


if __name__ == "__main__":
    main()
