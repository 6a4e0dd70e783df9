"""In-browser speed of the scan: model load time and seconds per 640x480 photo in headless Chromium
(onnxruntime-web, WebAssembly, 1 and N threads), beside the Python ONNX figure of the same files, one run.

The model is the demo model when `make demo` has built it (128 px, head on mixed2), otherwise the same
architecture with random weights (BatchNorm run a little): speed hardly depends on the weights (the
box stage does a little). `detect export-web --quantize int8` writes the site (fp32 and int8 files);
a static server on 127.0.0.1 sends it with the COOP/COEP headers, so the page may use threads.

Per row, a fresh browser context (empty cache): the page's own figures, `window.logoScanPage`:
`loadMs` (model download + onnxruntime-web start + session) and the wall time of each photo's scan
(decode, pyramid, model, boxes, drawing) after one warm-up photo, with the record's model time beside
it (the rest is JavaScript: resizing, cutting, stitching, boxes). Python: `Detector.scan(path)` of
the same photos with the same file (onnxruntime, every core), after one warm-up scan.

    .venv/bin/python benchmarks/web_speed.py [--photos 6] [--model MODEL_DIR]

Writes benchmarks/results/web_speed.json and prints the table, with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _bench_data import CACHE, scene_images  # noqa: E402
from _bench_machine import machine_info, usable_cores  # noqa: E402
from _bench_run import run_worker  # noqa: E402

DEMO_MODEL = ROOT / "demo-output" / "model"
CHROMIUM = os.environ.get("DETECT_CHROMIUM", "/usr/bin/chromium")


def model_dir(given: str | None) -> tuple[Path, str]:
    """--model, the demo model, or the demo architecture with random weights (made once, cached)."""
    if given:
        return Path(given), f"model {given}"
    if (DEMO_MODEL / "model.json").is_file():
        return DEMO_MODEL, "demo model (128 px, mixed2)"
    rdir = CACHE / "inception128-mixed2-v1"
    if not (rdir / "model.keras").is_file():
        run_worker("make-model", {"input_size": 128, "cam_layer": "mixed2", "out": str(rdir)})
    return rdir, "random-weights demo architecture (128 px, mixed2)"


def build_site(model: Path) -> Path:
    """The export-web site of the model (fp32 + int8), cached beside it."""
    from detector.web import WebExport, export_web

    out = model.parent / f"{model.name}-web-site"
    if not (out / "site.json").is_file():
        export_web(WebExport(str(model), out=str(out), quantize="int8"), log=lambda s: None)
    return out


def python_row(onnx: Path, photos: list[Path]) -> dict:
    """Seconds per photo of Detector.scan with this file (tiles mode, onnxruntime on every core)."""
    from detector.api import Detector

    det = Detector.load(onnx)
    det.scan(photos[0])
    times, model = [], []
    for p in photos:
        t0 = time.perf_counter()
        model.append(det.scan(p).timings_ms["model"] / 1e3)
        times.append(time.perf_counter() - t0)
    return {"threads": usable_cores(), **_stats(times, model)}


def _stats(times: list[float], model: list[float]) -> dict:
    """Median and best (other load on the machine only ever adds time) seconds per photo, and the model's."""
    return {
        "s_per_photo": round(statistics.median(times), 3),
        "best_s_per_photo": round(min(times), 3),
        "model_s": round(statistics.median(model), 3),
    }


class _Isolated(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript"}

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args: object) -> None:
        pass


def serve(site: Path) -> http.server.ThreadingHTTPServer:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Isolated, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def browser_row(browser, url: str, photos: list[Path]) -> dict:
    """One fresh context: the page's load time, then each photo scanned (the first is a warm-up)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("#status[data-state=ready]", timeout=300_000)
    ready_s = time.perf_counter() - t0
    for i, p in enumerate(photos, 1):
        page.set_input_files("#pick", str(p))
        page.wait_for_selector(f'#status[data-count="{i}"]', timeout=300_000)
    state = page.evaluate(
        "({load: logoScanPage.loadMs, scans: logoScanPage.scanMs, threads: logoScanPage.threads,"
        " model: logoScanPage.records.map((r) => r.timings_ms.model)})"
    )
    ctx.close()
    scans = [ms / 1e3 for ms in state["scans"][1:]]
    model = [ms / 1e3 for ms in state["model"][1:]]
    return {
        "threads": state["threads"],
        "load_s": round(state["load"] / 1e3, 3),
        "page_ready_s": round(ready_s, 3),
        **_stats(scans, model),
    }


def browser_rows(site: Path, photos: list[Path], threads: list[int]) -> list[dict]:
    from playwright.sync_api import sync_playwright

    srv = serve(site)
    url = f"http://127.0.0.1:{srv.server_port}/"
    rows = []
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
            for precision in ("fp32", "int8"):
                for n in threads:
                    row = browser_row(browser, f"{url}?precision={precision}&threads={n}", photos)
                    rows.append({"runtime": "browser (onnxruntime-web, wasm)", "precision": precision, **row})
                    print(f"  browser {precision} {n} thread(s): {row}", flush=True)
            browser.close()
    finally:
        srv.shutdown()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=6, help="photos scanned per row (the first is a warm-up)")
    ap.add_argument("--model", help="a model directory (default: demo-output/model, else random weights)")
    args = ap.parse_args()
    model, what = model_dir(args.model)
    site = build_site(model)
    photos = scene_images(640, 480, args.photos)
    manifest = json.loads((site / "site.json").read_text())
    rows = []
    for m in manifest["models"]:
        row = python_row(site / m["path"], photos[1:])
        rows.append({"runtime": "Python (onnxruntime)", "precision": m["precision"], "load_s": None, **row})
        print(f"  python {m['precision']}: {row}", flush=True)
    rows += browser_rows(site, photos, sorted({1, usable_cores()}))
    machine = machine_info()
    sizes = {m["precision"]: m["bytes"] for m in manifest["models"]}
    out = {"benchmark": "web-speed", "model": what, "model_bytes": sizes, "photos": len(photos) - 1}
    out |= {"photo_size": "640x480", "chromium": _chromium_version(), "rows": rows, "machine": machine}
    (HERE / "results" / "web_speed.json").write_text(json.dumps(out, indent=2) + "\n")
    cpu = f"{machine.get('cpu_model')} (family/model {machine.get('cpu_family_model')}), {usable_cores()} cores"
    print(f"\n{what}; {len(photos) - 1} photos 640x480 (tiles mode); CPU: {cpu}")
    print(f"load average {machine.get('load_average_1_5_15')}; {out['chromium']}")
    print("| runtime | precision | threads | model load, s | s per photo, median (best) | of which the model, s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        load = "-" if r["load_s"] is None else r["load_s"]
        each = f"{r['s_per_photo']} ({r['best_s_per_photo']})"
        print(f"| {r['runtime']} | {r['precision']} | {r['threads']} | {load} | {each} | {r['model_s']} |")


def _chromium_version() -> str:
    import subprocess

    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
