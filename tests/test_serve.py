"""`detect serve` as a real server process on 127.0.0.1 with the session's trained model, and a real
headless Chromium on its page. One server per module; the micro-batcher is also tested in-process.

The server runs with a tiny queue (--max-queue 1) so that 503 is reachable, a 1 MB upload cap and a
2 MP pixel cap so that both 413s are cheap to provoke, and an API key.
"""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
import zipfile
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from detector.serve.process import ServerProcess
from detector.synth.compose import alpha_paste, procedural_background
from detector.synth.demo_logo import demo_logo
from tests.helpers import ROOT, launch_chromium, run_cli

KEY = "test-key-0123456789"
AUTH = {"X-API-Key": KEY}
LOGOS = [(170, 80, 120), (30, 30, 36)]  # (x, y, side) in a 320x240 scene: the test model finds both
PAGE_SCENE = (3, [(30, 120, 60), (180, 40, 90)])  # seed, logos: two tight boxes (IoU ~0.7) for the screenshots


def scene(seed: int, logos: list[tuple[int, int, int]], size: tuple[int, int] = (320, 240)) -> np.ndarray:
    img = procedural_background(np.random.default_rng(seed), size[1], size[0])
    for x, y, side in logos:
        alpha_paste(img, cv2.resize(demo_logo(256), (side, side), interpolation=cv2.INTER_AREA), x, y)
    return img


def jpeg(pixels: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's TMPDIR: every upload and zip it unpacks must be gone from here after each request."""
    return tmp_path_factory.mktemp("serve-tmp")


@pytest.fixture(scope="module")
def server(trained_model: Path, server_tmp: Path, tmp_path_factory: pytest.TempPathFactory):
    args = ["--api-key", KEY, "--max-upload-mb", "1", "--max-pixels", "2000000", "--max-queue", "1"]
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    srv = ServerProcess(trained_model, *args, log_path=log, env={"TMPDIR": str(server_tmp)})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess):
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=180) as c:
        yield c


def leftovers(tmp: Path) -> list[str]:
    time.sleep(0.2)  # the streamed batch cleans up in a background task right after its last line
    return sorted(p.name for p in tmp.glob("detect-serve-*"))


def error_of(r: httpx.Response) -> dict[str, str]:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]


# -- open endpoints, docs, auth ---------------------------------------------------------------------


def test_healthz_page_and_docs_are_open_and_offline(server: ServerProcess) -> None:
    h = httpx.get(server.url + "/healthz")
    assert h.status_code == 200
    body = h.json()
    assert body["status"] == "ok" and body["auth_required"] is True and body["queue"]["limit"] == 1
    assert body["batching"]["model_calls"] >= 0
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assets = [page.text] + [httpx.get(f"{server.url}/static/{n}").text for n in ("app.js", "style.css")]
    for text in assets:
        assert "http://" not in text and "https://" not in text and "//cdn" not in text  # no external assets
    assert 'capture="environment"' in page.text and 'accept="image/*"' in page.text
    docs = httpx.get(server.url + "/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text and "/docs-static/swagger-ui-bundle.js" in docs.text
    js = httpx.get(server.url + "/docs-static/swagger-ui-bundle.js")
    assert js.status_code == 200 and "SwaggerUIBundle" in js.text
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/scan", "/v1/scan/batch", "/v1/model", "/healthz"} <= set(spec["paths"])
    scan_op = spec["paths"]["/v1/scan"]["post"]
    assert "multipart/form-data" in scan_op["requestBody"]["content"]
    assert {p["name"] for p in scan_op["parameters"]} >= {"boxes", "heatmap", "cam_threshold", "merge", "scales"}


def test_api_key_is_required_on_v1(server: ServerProcess) -> None:
    for headers in ({}, {"X-API-Key": "wrong-key-123"}, {"Authorization": "Bearer wrong-key-123"}):
        r = httpx.get(server.url + "/v1/model", headers=headers)
        assert r.status_code == 401 and error_of(r)["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(server.url + "/v1/scan", files={"files": ("a.jpg", b"x")})
    assert r.status_code == 401  # checked before the body is even read
    assert httpx.get(server.url + "/v1/model", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(server.url + "/v1/model", headers=AUTH).status_code == 200


def test_model_endpoint(client: httpx.Client, trained_model: Path) -> None:
    m = client.get("/v1/model").json()
    meta = json.loads((trained_model / "model.json").read_text())
    assert m["classes"] == meta["classes"] == ["no-logo", "demo-logo"]
    assert m["positive_classes"] == ["demo-logo"] and m["input_size"] == 80
    assert m["thresholds"] == meta["thresholds"] and m["cam_layer"] == "mixed2"
    assert m["model"]["backend"] == "keras" and len(m["model"]["sha256"]) == 64
    assert m["limits"] == {
        "max_upload_mb": 1.0,
        "max_files": 100,
        "max_pixels": 2000000,
        "max_queue": 1,
        "micro_batching": True,
        "model_calls": "batched",
        "max_batch": 128,
        "max_windows": 512,
    }


# -- scanning ---------------------------------------------------------------------------------------


def test_scan_json_is_the_cli_json(client: httpx.Client, trained_model: Path, tmp_path: Path) -> None:
    img = tmp_path / "two logos.jpg"
    img.write_bytes(jpeg(scene(1, LOGOS)))
    cli = run_cli("scan", str(img), "--model", str(trained_model), "--format", "json")
    assert cli.returncode == 0, cli.stderr
    want = json.loads(cli.stdout)
    r = client.post("/v1/scan", files={"files": (img.name, img.read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert list(got) == list(want)  # same keys, same order
    assert got["path"] == "two logos.jpg" and want["path"] == str(img)
    for k in ("width", "height", "has_logo", "labels", "errors", "model", "sha256"):
        assert got[k] == want[k], k
    assert (
        set(got["timings_ms"]) == set(want["timings_ms"]) and got["timings_ms"]["tiles"] == want["timings_ms"]["tiles"]
    )
    assert got["scores"].keys() == want["scores"].keys()
    for c in got["scores"]:
        assert got["scores"][c] == pytest.approx(want["scores"][c], abs=2e-3)
    assert len(got["boxes"]) == len(want["boxes"]) >= 2
    for g, w in zip(got["boxes"], want["boxes"], strict=True):
        assert set(g) == set(w) and g["label"] == w["label"]
        assert [g[k] for k in ("x1", "y1", "x2", "y2")] == pytest.approx(
            [w[k] for k in ("x1", "y1", "x2", "y2")], abs=2
        )

    # Options as form fields; heatmap adds one key, a PNG overlay per label.
    r = client.post(
        "/v1/scan", files={"files": (img.name, img.read_bytes())}, data={"heatmap": "true", "merge": "finest"}
    )
    assert r.status_code == 200, r.text
    heat = r.json()
    assert set(heat) == set(want) | {"heatmaps"}
    url = heat["heatmaps"]["demo-logo"]
    assert url.startswith("data:image/png;base64,")
    import base64

    overlay = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert overlay.mode == "RGBA" and overlay.size == (320, 240)
    assert np.asarray(overlay)[..., 3].max() > 100  # somewhere the evidence is strong

    # Options in the query string; boxes=false skips box finding.
    r = client.post("/v1/scan?boxes=false", files={"files": (img.name, img.read_bytes())})
    assert r.status_code == 200 and r.json()["boxes"] == [] and r.json()["has_logo"] == want["has_logo"]


def test_several_files_give_a_list_and_share_model_calls(client: httpx.Client, server_tmp: Path) -> None:
    before = client.get("/healthz").json()["batching"]
    files = [("files", (f"s{i}.jpg", jpeg(scene(20 + i, [(60 + 20 * i, 50, 80)])), "image/jpeg")) for i in range(4)]
    r = client.post("/v1/scan", files=files)
    assert r.status_code == 200, r.text
    recs = r.json()
    assert [x["path"] for x in recs] == ["s0.jpg", "s1.jpg", "s2.jpg", "s3.jpg"]
    assert all(x["width"] == 320 and not x["errors"] for x in recs)
    after = client.get("/healthz").json()["batching"]
    calls = after["model_calls"] - before["model_calls"]
    requests = after["predict_requests"] - before["predict_requests"]
    assert requests >= 4 and calls < requests, (before, after)  # four scans at once: merged model calls
    assert leftovers(server_tmp) == []


def test_batch_streams_ndjson_with_error_records(client: httpx.Client, server_tmp: Path) -> None:
    good = {f"g{i}.jpg": jpeg(scene(30 + i, [(100, 60, 90)])) for i in range(3)}
    bad = {
        "notes.txt": b"not an image at all",
        "empty.jpg": b"",
        "bomb.png": png(Image.new("L", (3000, 3000))),
        "cut.jpg": good["g0.jpg"][:300],
    }
    parts = [("files", (name, data)) for name, data in {**good, **bad}.items()]
    lines = []
    with client.stream("POST", "/v1/scan/batch", files=parts) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        for line in r.iter_lines():
            if line.strip():
                lines.append(json.loads(line))
    assert sorted(x["index"] for x in lines) == list(range(len(parts)))
    by_name = {x["path"]: x for x in lines}
    assert set(by_name) == set(good) | set(bad)
    for name in good:
        assert not by_name[name]["errors"] and by_name[name]["width"] == 320
    for name in bad:
        assert by_name[name]["errors"] and by_name[name]["boxes"] == [], name
    assert "not an image" in by_name["notes.txt"]["errors"][0]
    assert "too many pixels" in by_name["bomb.png"]["errors"][0]
    assert leftovers(server_tmp) == []


def test_batch_takes_a_zip(client: httpx.Client, server_tmp: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("photos/a.jpg", jpeg(scene(41, [(40, 40, 100)])))
        z.writestr("photos/b.jpg", jpeg(scene(42, [])))
        z.writestr("photos/readme.txt", "hello")
        z.writestr("__MACOSX/photos/._a.jpg", "resource fork")
    r = client.post("/v1/scan/batch", files={"files": ("photos.zip", buf.getvalue(), "application/zip")})
    assert r.status_code == 200, r.text
    recs = {x["path"]: x for x in map(json.loads, r.text.splitlines())}
    assert set(recs) == {"photos/a.jpg", "photos/b.jpg", "photos/readme.txt"}
    assert not recs["photos/a.jpg"]["errors"] and recs["photos/readme.txt"]["errors"]
    assert leftovers(server_tmp) == []


# -- errors -----------------------------------------------------------------------------------------


def test_upload_over_the_size_cap_is_413(client: httpx.Client, server_tmp: Path) -> None:
    big = np.random.default_rng(0).integers(0, 256, 1_500_000, dtype=np.uint8).tobytes()
    r = client.post("/v1/scan", files={"files": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413
    e = error_of(r)
    assert e["code"] == "too_large" and "big.jpg" in e["message"] and "1 MB" in e["message"]
    assert leftovers(server_tmp) == []


def test_too_many_pixels_is_413(client: httpx.Client) -> None:
    bomb = png(Image.new("L", (3000, 3000)))  # 9 MP, a few KB: over the server's --max-pixels 2000000
    assert len(bomb) < 100_000
    r = client.post("/v1/scan", files={"files": ("bomb.png", bomb, "image/png")})
    assert r.status_code == 413
    e = error_of(r)
    assert e["code"] == "too_many_pixels" and "3000x3000" in e["message"]


def test_non_images_are_415(client: httpx.Client) -> None:
    r = client.post("/v1/scan", files={"files": ("notes.txt", b"just text", "text/plain")})
    assert r.status_code == 415 and error_of(r)["code"] == "not_an_image"
    r = client.post("/v1/scan", content=b"raw bytes", headers={"content-type": "image/jpeg"})
    assert r.status_code == 415 and error_of(r)["code"] == "unsupported_media_type"


def test_bad_requests_are_json_errors(client: httpx.Client) -> None:
    img = jpeg(scene(5, []))
    r = client.post("/v1/scan?merge=average", files={"files": ("a.jpg", img)})
    assert r.status_code == 422 and error_of(r)["code"] == "invalid_option" and "merge" in error_of(r)["message"]
    r = client.post("/v1/scan?box_calibration=maybe", files={"files": ("a.jpg", img)})
    assert r.status_code == 422 and "box_calibration" in error_of(r)["message"]
    assert client.post("/v1/scan?box_calibration=false", files={"files": ("a.jpg", img)}).status_code == 200
    r = client.post("/v1/scan", files={"files": ("a.jpg", img)}, data={"colour": "red"})
    assert r.status_code == 422 and "colour" in error_of(r)["message"]
    r = client.post("/v1/scan", data={"heatmap": "true"}, files={"other": ("", b"")})
    assert r.status_code == 422 and error_of(r)["code"] == "no_files"
    r = client.post("/v1/scan", files={"files": ("cut.jpg", img[:300])})
    assert r.status_code == 422 and error_of(r)["code"] == "undecodable_image"
    assert error_of(client.get("/v1/nothing"))["code"] == "not_found"
    assert error_of(client.get("/v1/scan"))["code"] == "method_not_allowed"


def test_a_full_queue_is_503_with_retry_after(client: httpx.Client) -> None:
    """--max-queue 1: of several requests sent at once, some are turned away at once, none waits."""
    img = jpeg(scene(7, [(200, 150, 150)], size=(640, 480)))

    def send(barrier: threading.Barrier, results: list[httpx.Response]) -> None:
        barrier.wait()
        results.append(client.post("/v1/scan", files={"files": ("q.jpg", img)}))

    for _attempt in range(3):
        barrier = threading.Barrier(5)
        results: list[httpx.Response] = []
        threads = [threading.Thread(target=send, args=(barrier, results)) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        if 503 in codes:
            break
    assert 200 in codes and 503 in codes, codes
    busy = next(r for r in results if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and error_of(busy)["code"] == "overloaded"


# -- the page in a real browser ---------------------------------------------------------------------


def test_page_in_headless_chromium(server: ServerProcess, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `pip install -e '.[dev]'` (it is in the dev extra)")
    photo = tmp_path / "shop window.jpg"
    photo.write_bytes(jpeg(scene(*PAGE_SCENE)))
    # Screenshots go to the test's temp dir; DETECT_UPDATE_SCREENSHOTS=1 refreshes the README's in docs/.
    docs = ROOT / "docs" if os.environ.get("DETECT_UPDATE_SCREENSHOTS") else tmp_path
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            for name, viewport, mobile in (
                ("desktop", {"width": 1280, "height": 800}, False),
                ("phone", {"width": 390, "height": 844}, True),
            ):
                ctx = browser.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile)
                page = ctx.new_page()
                page.goto(server.url + "/")
                # The server wants a key: the page asks for it, and a wrong one is refused.
                page.wait_for_selector("#key-panel:not([hidden])")
                page.fill("#api-key", "wrong-key-000")
                page.click("#key-panel button")
                page.wait_for_function("document.querySelector('#key-message').textContent.includes('refused')")
                page.fill("#api-key", KEY)
                page.click("#key-panel button")
                page.wait_for_selector("#key-panel", state="hidden")
                assert "demo-logo" in page.inner_text("#model-info")
                page.set_input_files("#pick", str(photo))
                page.wait_for_selector(".verdict:not(.pending)", timeout=120_000)
                assert page.inner_text(".verdict") == "Logo found: demo-logo"
                boxes = page.locator(".box-layer .box")
                assert boxes.count() >= 1
                assert "demo-logo" in boxes.first.inner_text()
                # Boxes are drawn over the photo, inside it.
                photo_box = page.locator(".photo").bounding_box()
                first = boxes.first.bounding_box()
                assert photo_box and first and photo_box["width"] <= viewport["width"]
                assert (
                    photo_box["x"] - 4 <= first["x"]
                    and first["x"] + first["width"] <= photo_box["x"] + photo_box["width"] + 4
                )
                assert "0.9" in page.inner_text(".scores") or "1.000" in page.inner_text(".scores")
                # The heatmap toggle shows the overlay without a new request.
                assert not page.locator(".heat-layer").is_visible()
                page.check("#show-heat")
                assert page.locator(".heat-layer img").first.is_visible()
                if name == "phone":
                    page.uncheck("#show-heat")
                page.screenshot(path=str(docs / f"serve-{name}.png"))  # desktop with, phone without heatmap
                ctx.close()
        finally:
            browser.close()
    assert (docs / "serve-desktop.png").stat().st_size > 10_000


# -- the micro-batcher in-process, and shutdown ------------------------------------------------------


def test_micro_batching_backend_merges_and_splits_exactly(trained_model: Path) -> None:
    from detector.backends import open_backend
    from detector.serve.batching import BatcherClosed, MicroBatchingBackend

    inner = open_backend(trained_model)
    batcher = MicroBatchingBackend(inner, max_batch=64, wait_ms=20)
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 256, (n, 80, 80, 3), dtype=np.uint8) for n in (3, 5, 1, 7, 2, 4)]
    inputs.insert(2, rng.integers(0, 256, (1, 120, 96, 3), dtype=np.uint8))  # a dense-mode level: its own call
    want = [inner.predict(t, with_features=(i % 2 == 0)) for i, t in enumerate(inputs)]
    got: dict[int, object] = {}
    start = threading.Barrier(len(inputs))

    def call(i: int) -> None:
        start.wait()
        got[i] = batcher.predict(inputs[i], with_features=(i % 2 == 0))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, w in enumerate(want):
        np.testing.assert_allclose(got[i].probs, w.probs, atol=1e-5)
        np.testing.assert_allclose(got[i].cams, w.cams, atol=1e-4)
        assert (got[i].features is None) == (i % 2 == 1)
        if got[i].features is not None:
            np.testing.assert_allclose(got[i].features, w.features, atol=1e-4)
    stats = batcher.stats.as_dict()
    assert stats["predict_requests"] == 7 and stats["model_calls"] < 7 and stats["tiles"] == 23
    batcher.close()
    assert not batcher.running
    with pytest.raises(BatcherClosed):
        batcher.predict(inputs[0])


def test_serial_backend_runs_one_call_at_a_time(trained_model: Path) -> None:
    """The one-call-at-a-time mode: same answers as the runtime, never two calls inside it at once."""
    from detector.backends import open_backend
    from detector.serve.batching import SerialBackend

    inner = open_backend(trained_model)
    inside, most = [0], [0]
    lock = threading.Lock()
    real_predict = inner.predict

    def counting_predict(tiles, with_features=False):  # the real model call, with a concurrency probe
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            return real_predict(tiles, with_features)
        finally:
            with lock:
                inside[0] -= 1

    inner.predict = counting_predict
    serial = SerialBackend(inner)
    rng = np.random.default_rng(1)
    inputs = [rng.integers(0, 256, (n, 80, 80, 3), dtype=np.uint8) for n in (2, 3, 1, 4, 2, 2)]
    want = [real_predict(t) for t in inputs]
    got: dict[int, object] = {}
    start = threading.Barrier(len(inputs))

    def call(i: int) -> None:
        start.wait()
        got[i] = serial.predict(inputs[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
    for i, w in enumerate(want):
        np.testing.assert_allclose(got[i].probs, w.probs, atol=1e-5)


def test_sigterm_finishes_the_request_in_flight_then_stops(server: ServerProcess, client: httpx.Client) -> None:
    """Runs last in this module: it stops the module's server."""
    img = jpeg(scene(8, [(300, 200, 160)], size=(960, 720)))
    result: list[httpx.Response] = []
    t = threading.Thread(target=lambda: result.append(client.post("/v1/scan", files={"files": ("late.jpg", img)})))
    t.start()
    deadline = time.monotonic() + 60
    while client.get("/healthz").json()["queue"]["active"] == 0:
        assert time.monotonic() < deadline and t.is_alive(), "the request never started scanning"
        time.sleep(0.02)
    server.proc.send_signal(signal.SIGTERM)
    t.join(120)
    assert result and result[0].status_code == 200 and result[0].json()["width"] == 960
    code = server.proc.wait(60)
    log = server.log()
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete: exit by that signal, or 0.
    assert code in (0, -signal.SIGTERM), log
    assert "micro-batching worker stopped" in log and "Finished server process" in log, log
