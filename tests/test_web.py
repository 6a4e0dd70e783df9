"""`detect export-web` and `detect serve --private`: the whole scan in a real headless Chromium.

The site is built by the real CLI from the session model (with a real calibration in its metadata,
tests/web_parity.py), served from 127.0.0.1 by a tiny http.server thread that logs every request, and
driven through Playwright. The page's scans of PNG scenes must equal Python's scans of the same files
(verdicts; every box matched with IoU >= 0.9 and its score within 1e-3), and neither the browser's
network log nor the server's shows a request that carries image bytes or goes to another origin.
The scan library's OpenCV resizing is checked pixel for pixel against cv2 first (in Node).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from detector.serve.process import ServerProcess
from tests.helpers import ROOT, launch_chromium, run_cli
from tests.web_parity import calibrated_copy, compare, png_scenes, summary

STATIC = ROOT / "detector" / "web" / "static"
VIEWPORTS = {"desktop": ({"width": 1280, "height": 800}, False), "phone": ({"width": 390, "height": 844}, True)}


def _node() -> str:
    path = shutil.which("node")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("`node` is not on PATH (CI is set, so this is a failure): install Node.js >= 18")
        pytest.skip("`node` is not on PATH: install Node.js >= 18 to test the JavaScript scan library")
    return path


# -- the scan library's resizing, against OpenCV ------------------------------------------------------

RESIZE_CHECK = """
import fs from 'node:fs';
import { resizeAreaU8, resizeLinearU8, resizeLinearF32 } from '%s';
for (const c of JSON.parse(fs.readFileSync(process.argv[2]))) {
  const buf = fs.readFileSync(c.file);
  let out;
  if (c.kind === 'f32') {
    out = resizeLinearF32(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4), c.sw, c.sh, c.dw, c.dh);
  } else {
    const img = { width: c.sw, height: c.sh, channels: 3, data: new Uint8Array(buf) };
    out = (c.kind === 'area' ? resizeAreaU8 : resizeLinearU8)(img, c.dw, c.dh).data;
  }
  fs.writeFileSync(c.file + '.js', Buffer.from(out.buffer, out.byteOffset, out.byteLength));
}
"""


def _resize_cases(rng: np.random.Generator) -> list[tuple[str, int, int, int, int]]:
    """(kind, src w, src h, dst w, dst h): random shrinks and enlargements, whole-number ratios, the
    levels of a 320x240 scan, and CAM maps (float, 1 to 15 cells) stretched or shrunk."""
    cases = []
    for i in range(24):
        sw, sh = int(rng.integers(20, 400)), int(rng.integers(20, 300))
        s = float(rng.uniform(0.2, 0.99)) if i % 2 == 0 else float(rng.uniform(1.01, 3.0))
        cases.append(("area" if s < 1 else "linear", sw, sh, max(1, round(sw * s)), max(1, round(sh * s))))
    cases += [("area", 320, 240, 160, 120), ("area", 321, 241, 107, 80), ("area", 320, 240, 284, 213)]
    cases += [("area", 320, 240, 130, 97), ("linear", 320, 240, 622, 467), ("linear", 640, 480, 1245, 934)]
    for i in range(40):
        sw, sh = int(rng.integers(1, 16)), int(rng.integers(1, 16))
        dw, dh = (int(rng.integers(1, sw + 1)), int(rng.integers(1, sh + 1))) if i % 4 == 0 else (0, 0)
        cases.append(("f32", sw, sh, dw or int(rng.integers(2, 200)), dh or int(rng.integers(2, 200))))
    return cases


def test_scan_library_resizes_exactly_as_opencv(tmp_path: Path) -> None:
    """The pyramid levels (INTER_AREA / INTER_LINEAR of uint8 RGB) and the stitched CAM maps
    (INTER_LINEAR of float32, through IPP in the opencv-python wheels) equal cv2.resize bit for bit."""
    node = _node()
    rng = np.random.default_rng(0)
    specs, wants = [], []
    for i, (kind, sw, sh, dw, dh) in enumerate(_resize_cases(rng)):
        if kind == "f32":
            src = (rng.random((sh, sw)) * rng.random((sh, sw)) * 3).astype(np.float32)
            want = cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR).reshape(dh, dw)
        else:
            src = cv2.GaussianBlur(rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8), (5, 5), 1.5 * (i % 2))
            interp = cv2.INTER_AREA if kind == "area" else cv2.INTER_LINEAR
            want = cv2.resize(src, (dw, dh), interpolation=interp)
        src.tofile(tmp_path / f"c{i}.bin")
        specs.append({"kind": kind, "sw": sw, "sh": sh, "dw": dw, "dh": dh, "file": str(tmp_path / f"c{i}.bin")})
        wants.append(want)
    (tmp_path / "cases.json").write_text(json.dumps(specs))
    script = tmp_path / "resize_check.mjs"
    script.write_text(RESIZE_CHECK % (STATIC / "scan" / "resize.mjs").as_uri())
    cases = str(tmp_path / "cases.json")
    done = subprocess.run([node, str(script), cases], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for spec, want in zip(specs, wants, strict=True):
        got = np.fromfile(spec["file"] + ".js", want.dtype).reshape(want.shape)
        differ = int((got != want).sum())
        assert differ == 0, f"{spec['kind']} {spec['sw']}x{spec['sh']} -> {spec['dw']}x{spec['dh']}: {differ} values"


# -- the site -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibrated(exported_onnx, scene_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The calibrated session model (the same file tests/test_node_example.py uses)."""
    out = tmp_path_factory.getbasetemp() / "calibrated-onnx" / "model.onnx"
    return calibrated_copy(exported_onnx.path, scene_data / "scenes", out)


@pytest.fixture(scope="module")
def site(calibrated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`detect export-web MODEL.onnx --out SITE` through the real CLI (npm ci of onnxruntime-web if needed)."""
    out = tmp_path_factory.mktemp("web") / "site"
    r = run_cli("export-web", str(calibrated), "--out", str(out), timeout=900)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "site written to" in r.stdout and "the page loads fp32" in r.stdout
    return out


@pytest.fixture(scope="module")
def scenes(scene_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return png_scenes(scene_data / "scenes", tmp_path_factory.mktemp("web-scenes"))


class _Logged(http.server.SimpleHTTPRequestHandler):
    """Serves the site's folder; every request (method, path, body length) goes to `self.server.seen`."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript"}

    def _note(self) -> None:
        self.server.seen.append((self.command, self.path, int(self.headers.get("Content-Length") or 0)))

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._note()
        super().do_GET()

    def do_POST(self) -> None:  # noqa: N802
        self._note()
        self.send_error(405)

    do_PUT = do_POST

    def end_headers(self) -> None:
        if self.server.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def static_server(site: Path) -> Iterator:
    """Start a static server for a site (isolated: with the COOP/COEP headers threads need)."""
    servers = []

    def start(isolated: bool = False, root: Path = site) -> http.server.ThreadingHTTPServer:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Logged, directory=str(root)))
        srv.seen, srv.isolated, srv.root = [], isolated, root
        srv.url = f"http://127.0.0.1:{srv.server_port}"
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _open(browser, url: str, name: str, requests: list):
    viewport, mobile = VIEWPORTS[name]
    ctx = browser.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile, accept_downloads=True)
    ctx.on("request", lambda r: requests.append((r.method, r.url, r.post_data_buffer)))
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("#status[data-state=ready]", timeout=120_000)
    assert not errors, errors
    return ctx, page


def _scan_in_page(page, files: list[Path]) -> list[dict]:
    """Pick the files; their scan@2 records, each with the page's full-precision boxes as `raw_boxes`."""
    page.set_input_files("#pick", [str(f) for f in files])
    page.wait_for_selector(f'#status[data-count="{len(files)}"]', timeout=120_000 * len(files))
    return page.evaluate("logoScanPage.records.map((r, i) => ({...r, raw_boxes: logoScanPage.boxes[i]}))")


def _assert_nothing_uploaded(requests: list, srv, images: list[Path]) -> None:
    """Browser and server logs: GETs of the site's own files only, no body, no other origin, no image."""
    assert requests and srv.seen
    for method, url, body in requests:
        assert url.startswith(srv.url + "/"), f"request to another origin: {url}"
        assert method == "GET" and not body, f"{method} {url} carries {len(body or b'')} bytes"
    names = {p.name for p in images}
    for method, path, length in srv.seen:
        assert method == "GET" and length == 0, (method, path, length)
        assert not any(n in path for n in names), f"the server saw an image name: {path}"
        file = path.split("?")[0].lstrip("/")
        assert file == "" or (srv.root / file).is_file(), f"a request for something the site does not hold: {path}"


def test_page_scans_like_python_and_uploads_nothing(
    site: Path, calibrated: Path, scenes: list[Path], static_server, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    from detector import Detector

    detector = Detector.load(calibrated)
    srv = static_server()
    docs = ROOT / "docs" if os.environ.get("DETECT_UPDATE_SCREENSHOTS") else tmp_path
    requests: list = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            ctx, page = _open(browser, srv.url + "/", "desktop", requests)
            info = page.inner_text("#model-info")
            assert "fp32" in info and "1 thread" in info and "not cross-origin isolated" in info
            assert "Nothing leaves this device" in page.inner_text(".private")
            files = scenes[::-1]  # the last one scanned is drawn on top: a scene with logos, for the screenshot
            records = _scan_in_page(page, files)
            parities = [compare(detector.scan(str(f)), rec, f.name) for f, rec in zip(files, records, strict=True)]
            assert sum(p.boxes for p in parities) >= 3
            assert all(r["schema"] == "logo-detector/scan@2" and not r["errors"] for r in records)
            with page.expect_download() as got:
                page.click("#download")
            saved = json.loads(Path(got.value.path()).read_text())
            assert saved == [{k: v for k, v in r.items() if k != "raw_boxes"} for r in records]
            page.check("#show-heat")
            page.screenshot(path=str(docs / "web-desktop.png"))
            ctx.close()
            ctx, phone = _open(browser, srv.url + "/", "phone", requests)
            _scan_in_page(phone, scenes[:1])
            phone.screenshot(path=str(docs / "web-phone.png"), full_page=True)
            ctx.close()
        finally:
            browser.close()
    _assert_nothing_uploaded(requests, srv, scenes)
    assert (docs / "web-desktop.png").stat().st_size > 10_000 and (docs / "web-phone.png").stat().st_size > 10_000
    print(f"browser (onnxruntime-web, 1 thread) vs python: {summary(parities)}; {len(requests)} requests, all GET")


def test_threads_when_cross_origin_isolated(site: Path, calibrated: Path, scenes: list[Path], static_server) -> None:
    """With COOP/COEP the page runs on 2 threads and still gives Python's boxes."""
    from playwright.sync_api import sync_playwright

    from detector import Detector

    srv = static_server(isolated=True)
    requests: list = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            ctx, page = _open(browser, srv.url + "/?threads=2", "desktop", requests)
            assert page.evaluate("crossOriginIsolated") is True
            assert "2 threads (cross-origin isolated)" in page.inner_text("#model-info")
            record = _scan_in_page(page, scenes[:1])[0]
            assert "2 threads" in record["model"]["backend"]
            ctx.close()
        finally:
            browser.close()
    compare(Detector.load(calibrated).scan(str(scenes[0])), record, scenes[0].name)
    _assert_nothing_uploaded(requests, srv, scenes)


def test_quantized_site_loads_the_small_model(
    calibrated: Path, scenes: list[Path], static_server, tmp_path: Path
) -> None:
    """--quantize int8 adds models/model-int8.onnx, which the page loads (and scans with) by default."""
    from playwright.sync_api import sync_playwright

    out = tmp_path / "site"
    r = run_cli("export-web", str(calibrated), "--out", str(out), "--quantize", "int8", timeout=900)
    assert r.returncode == 0, r.stderr + r.stdout
    manifest = json.loads((out / "site.json").read_text())
    assert manifest["default"] == "int8" and [m["precision"] for m in manifest["models"]] == ["fp32", "int8"]
    assert (out / manifest["models"][1]["path"]).stat().st_size < (out / "models" / "model.onnx").stat().st_size
    assert "int8 vs fp32" in r.stdout and "the page loads int8" in r.stdout
    srv = static_server(root=out)
    requests: list = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            ctx, page = _open(browser, srv.url + "/", "desktop", requests)
            assert "int8" in page.inner_text("#model-info")
            record = _scan_in_page(page, scenes[:1])[0]
            assert "int8" in record["model"]["backend"] and not record["errors"]
            ctx.close()
        finally:
            browser.close()
    assert any(path.startswith("/models/model-int8.onnx") for _, path, _ in srv.seen)
    assert not any(path.startswith("/models/model.onnx") for _, path, _ in srv.seen)


def test_export_web_bad_input_is_one_line(calibrated: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "not-a-site"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    cases = [
        (["export-web", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "a")], "no such model"),
        (["export-web", str(calibrated), "--out", str(foreign)], "not empty"),
        (["export-web", str(calibrated), "--out", str(tmp_path / "b"), "--quantize", "int4"], "quantize"),
    ]
    for args, words in cases:
        r = run_cli(*args)
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert (foreign / "notes.txt").read_text() == "mine"


def test_serve_private_delivers_the_in_browser_scanner(calibrated: Path, tmp_path: Path) -> None:
    """`detect serve --private`: / is the in-browser page, isolated for threads; /v1/* still answers."""
    with ServerProcess(calibrated, "--private", log_path=tmp_path / "server.log") as srv:
        page = httpx.get(srv.url + "/")
        assert page.status_code == 200 and "Nothing leaves this device" in page.text
        assert page.headers["cross-origin-opener-policy"] == "same-origin"
        assert page.headers["cross-origin-embedder-policy"] == "require-corp"
        manifest = httpx.get(srv.url + "/site.json").json()
        model = httpx.get(srv.url + "/" + manifest["models"][0]["path"])
        assert model.status_code == 200 and model.content == calibrated.read_bytes()
        wasm = httpx.get(srv.url + "/ort/ort-wasm-simd-threaded.wasm")
        assert wasm.status_code == 200 and wasm.headers["content-type"] == "application/wasm"
        assert httpx.get(srv.url + "/v1/model").json()["classes"] == ["no-logo", "demo-logo"]
        assert "private: / is the in-browser scanner" in srv.log()


def test_export_web_from_a_model_directory(trained_model: Path, tmp_path: Path) -> None:
    """A model directory is exported to ONNX first (export_model, checked against Keras), then the site."""
    from detector.backends.onnx_backend import OnnxBackend
    from detector.model.store import read_meta

    out = tmp_path / "site"
    r = run_cli("export-web", str(trained_model), "--out", str(out), timeout=900)
    assert r.returncode == 0, r.stderr + r.stdout
    manifest = json.loads((out / "site.json").read_text())
    assert manifest["name"] == trained_model.name and manifest["default"] == "fp32"
    backend = OnnxBackend(out / manifest["models"][0]["path"])
    assert backend.meta.classes == read_meta(trained_model).classes
    assert {"index.html", "app.mjs", "logo-scan.mjs", "site.json"} <= {p.name for p in out.iterdir()}
    assert sorted(p.name for p in (out / "ort").iterdir()) == sorted(
        ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]
    )


PLAN_CHECK = """
import fs from 'node:fs';
import { planPyramid, pyramidTiles } from '%s';
const out = JSON.parse(fs.readFileSync(process.argv[2])).map(([w, h, tile, maxWindows]) => {
  try {
    const plan = planPyramid(w, h, tile, { overlap: 0.5, maxUpscale: 2, maxWindows });
    return { ...plan, tiles: pyramidTiles(w, h, plan.scales, tile, 0.5).map((t) => [t.scale, t.x, t.y]) };
  } catch (err) {
    return { error: err.message };
  }
});
console.log(JSON.stringify(out));
"""


def test_scan_library_plans_the_pyramid_as_python(tmp_path: Path) -> None:
    """Levels, windows and the budget's coarsening (or refusal) of odd and huge images, as plan.py does."""
    from detector.pipeline.options import ScanOptions
    from detector.pipeline.plan import plan_pyramid
    from detector.pipeline.tiling import BudgetError, pyramid_tiles

    sizes = [(320, 240, 80, 512), (640, 480, 128, 512), (1920, 1080, 128, 512), (4000, 3000, 299, 512)]
    sizes += [(75, 2000, 80, 512), (12000, 300, 128, 512), (100, 100, 80, 512), (3000, 3000, 128, 64), (513, 97, 80, 3)]
    sizes += [(20000, 80, 80, 8)]  # refused: no plan fits
    cases = tmp_path / "sizes.json"
    cases.write_text(json.dumps(sizes))
    script = tmp_path / "plan_check.mjs"
    script.write_text(PLAN_CHECK % (STATIC / "scan" / "pyramid.mjs").as_uri())
    done = subprocess.run([_node(), str(script), str(cases)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for (w, h, tile, budget), js in zip(sizes, json.loads(done.stdout), strict=True):
        try:
            plan = plan_pyramid(w, h, tile, ScanOptions(max_windows=budget))
        except BudgetError as e:
            assert js.get("error") == str(e), (w, h, js)
            continue
        assert js["scales"] == pytest.approx(plan.scales, rel=1e-12) and js["windows"] == plan.windows, (w, h)
        assert js["note"] == plan.note, (w, h)
        tiles = pyramid_tiles(w, h, plan.scales, tile, 0.5)
        assert [(x, y) for _, x, y in js["tiles"]] == [(t.x, t.y) for t in tiles], (w, h)


MERGE_CHECK = """
import fs from 'node:fs';
import { applyBoxCalibration, mergeLevels } from '%s';
const { sets, calibration } = JSON.parse(fs.readFileSync(process.argv[2]));
const out = sets.map((dets) => applyBoxCalibration(calibration, mergeLevels(dets), 80, 320, 240));
console.log(JSON.stringify(out));
"""


def test_scan_library_merges_and_calibrates_as_python(tmp_path: Path) -> None:
    """Random overlapping boxes of two labels and levels (ties included): NMS per label as OpenCV's
    NMSBoxes, containment suppression, then a box correction and scorer, as merge.py + calibration.py."""
    from detector.geometry import Detection
    from detector.pipeline.calibration import SCORER_FEATURES, BoxCalibration
    from detector.pipeline.merge import merge_levels

    rng = np.random.default_rng(3)
    calibration = {
        "correction": {"log_w": [0.2, 0.1], "log_h": [0.15, -0.05], "dx": 0.02, "dy": -0.03, "pairs": 20},
        "scorer": {
            "features": list(SCORER_FEATURES),
            "labels": {"a": {"coef": [0.8, -0.5, 0.1, -0.3, 0.2, -1.0, -0.4, -0.2], "intercept": 0.3}},
        },
    }
    sets = []
    for _ in range(60):
        n = int(rng.integers(1, 12))
        x1, y1 = rng.uniform(0, 250, n), rng.uniform(0, 180, n)
        w, h = rng.uniform(5, 70, n), rng.uniform(5, 60, n)
        scores = np.where(rng.random(n) < 0.4, 1.0, rng.uniform(0.3, 1.0, n))  # many exact ties at 1.0
        sets.append(
            [
                {"label": str(rng.choice(["a", "b"])), "score": float(s), "x1": float(a), "y1": float(b)}
                | {"x2": float(a + c), "y2": float(b + d), "scale": float(rng.choice([1.944, 0.888, 0.405]))}
                for s, a, b, c, d in zip(scores, x1, y1, w, h, strict=True)
            ]
        )
    data = tmp_path / "sets.json"
    data.write_text(json.dumps({"sets": sets, "calibration": calibration}))
    script = tmp_path / "merge_check.mjs"
    script.write_text(MERGE_CHECK % (STATIC / "scan" / "boxes.mjs").as_uri())
    done = subprocess.run([_node(), str(script), str(data)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    cal = BoxCalibration.from_dict(calibration)
    for dets, js in zip(sets, json.loads(done.stdout), strict=True):
        py = cal.apply(merge_levels([Detection(**d) for d in dets], "nms"), 80, 320, 240)
        assert [b["label"] for b in js] == [d.label for d in py]
        for b, d in zip(js, py, strict=True):
            assert [b[k] for k in ("score", "x1", "y1", "x2", "y2")] == pytest.approx(
                [d.score, d.x1, d.y1, d.x2, d.y2], abs=1e-9
            )
