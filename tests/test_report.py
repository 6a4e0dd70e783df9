"""Brand analytics: exposure fields, `detect report` (tables, files, the page in a real Chromium) and
video scanning into appearances, with the session's really trained model and videos written here.

The statistics tests need no model: they write result records with known boxes and check the
report's counts, shares and area statistics against numbers computed here from the same boxes.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.report import build
from detector.report.exposure import ZONES, exposure_fields, prominence, sharpness_of
from detector.video.appearances import AppearanceJoiner
from detector.video.synth import write_demo_video
from tests.helpers import ROOT, launch_chromium, run_cli

LOGO_FROM, LOGO_TO, EVERY = 2.0, 5.0, 0.5  # the test video's logo interval and sampling step


# -- exposure fields ------------------------------------------------------------------------------


def test_exposure_fields_follow_their_formulas() -> None:
    e = exposure_fields((0, 0, 320, 240), 0.8, 640, 480, None)  # the top-left quarter
    assert e["area_share"] == pytest.approx(0.25)
    assert e["position"] == {"x": 0.25, "y": 0.25, "zone": "top-left"}
    assert e["edge_distance"] == 0.0 and e["sharpness"] is None
    centrality = 1 - np.hypot(0.25, 0.25) / np.hypot(0.5, 0.5)
    assert e["prominence"] == pytest.approx(0.8 * (0.5 * 1.0 + 0.3 * centrality), abs=1e-4)
    mid = exposure_fields((600, 400, 680, 460), 1.0, 1280, 960, None)
    assert mid["position"]["zone"] == "middle-center" and mid["edge_distance"] == pytest.approx(400 / 960, abs=1e-4)
    assert exposure_fields((1200, 900, 1280, 960), 1.0, 1280, 960, None)["position"]["zone"] == "bottom-right"
    # Sharpness: a crisp checkerboard against the same board blurred.
    board = (np.indices((120, 120)).sum(axis=0) // 6 % 2 * 255).astype(np.uint8)
    crisp = np.dstack([board] * 3)
    blurred = cv2.GaussianBlur(crisp, (0, 0), 4)
    s_crisp, v_crisp = sharpness_of(crisp, (10, 10, 110, 110))
    s_blur, v_blur = sharpness_of(blurred, (10, 10, 110, 110))
    assert 0 <= s_blur < s_crisp < 1 and s_crisp == pytest.approx(v_crisp / (v_crisp + 100))
    assert s_blur < 0.5 < s_crisp  # 100, the usual blur cut, is the midpoint
    with_px = exposure_fields((10, 10, 110, 110), 0.9, 120, 120, crisp)
    assert with_px["prominence"] == pytest.approx(
        prominence(0.9, with_px["area_share"], 0.5, 0.5, with_px["sharpness"]), abs=1e-4
    )


def test_appearance_joiner_tolerates_one_missed_sample_and_splits_on_longer_gaps() -> None:
    j = AppearanceJoiner(step_s=1.0)
    for t in range(12):
        seen = t in (1, 2, 4, 5, 9)  # 3 missed once: joined; 6-8 missed: a new appearance
        j.add(float(t), {"acme": 0.1 * t} if seen else {})
    apps = j.finish(duration_s=12.0)
    assert [(a.start_s, a.end_s, a.frames) for a in apps] == [(1.0, 6.0, 4), (9.0, 10.0, 1)]
    assert apps[0].peak_prominence == pytest.approx(0.5)


# -- the report's numbers, from records with known boxes ------------------------------------------


def _records(n: int, seed: int = 0) -> tuple[list[dict], dict]:
    """n photo records (some with errors, some in the older scan@1 form without exposure) with known
    boxes of three brands, and the expected figures computed directly from those boxes."""
    rng = np.random.default_rng(seed)
    brands = ["acme", "globex", "initech"]
    recs, truth = [], {b: {"photos": 0, "areas": [], "zones": dict.fromkeys(ZONES, 0), "proms": []} for b in brands}
    photos = errors = 0
    for i in range(n):
        if i % 23 == 7:
            recs.append(
                {"path": f"p/{i}.jpg", "errors": ["not an image (unrecognised format)"], "boxes": [], "labels": []}
            )
            errors += 1
            continue
        w, h = int(rng.choice([640, 1280])), int(rng.choice([480, 960]))
        boxes, labels, exposure = [], set(), []
        for _ in range(int(rng.integers(0, 4))):
            b = brands[int(rng.choice(3, p=[0.6, 0.3, 0.1]))]
            bw, bh = rng.uniform(8, w / 2), rng.uniform(8, h / 2)
            x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            score = float(rng.uniform(0.5, 1))
            box = {"label": b, "score": round(score, 4), "x1": round(x1, 1), "y1": round(y1, 1),
                   "x2": round(x1 + bw, 1), "y2": round(y1 + bh, 1), "scale": 1.0}  # fmt: skip
            boxes.append(box)
            labels.add(b)
            e = exposure_fields((box["x1"], box["y1"], box["x2"], box["y2"]), box["score"], w, h, None)
            exposure.append(e)
            area = (box["x2"] - box["x1"]) * (box["y2"] - box["y1"]) / (w * h)
            truth[b]["areas"].append(area)
            cx, cy = (box["x1"] + box["x2"]) / 2 / w, (box["y1"] + box["y2"]) / 2 / h
            truth[b]["zones"][
                ["top", "middle", "bottom"][int(cy * 3)] + "-" + ["left", "center", "right"][int(cx * 3)]
            ] += 1
            truth[b]["proms"].append(e["prominence"])
        for b in labels:
            truth[b]["photos"] += 1
        photos += 1
        rec = {"path": f"p/{i}.jpg", "width": w, "height": h, "labels": sorted(labels), "boxes": boxes, "errors": [],
               "scores": {b: (0.99 if b in labels else float(rng.uniform(0, 0.4))) for b in brands},
               "thresholds": dict.fromkeys(brands, 0.5)}  # fmt: skip
        if i % 2:  # scan@2 records carry exposure; the others are older records the report fills in
            rec |= {"schema": "logo-detector/scan@2", "exposure": exposure}
        recs.append(rec)
    return recs, {"brands": truth, "photos": photos, "errors": errors}


def test_report_counts_shares_and_area_statistics_match_the_boxes(tmp_path: Path) -> None:
    recs, want = _records(1500)
    path = tmp_path / "results.jsonl"
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
        f.write('{"path": "torn.jpg", "wid\n')  # a torn line: noted, not fatal
    rep = build([path])
    all_dets = sum(len(t["areas"]) for t in want["brands"].values())
    assert rep.totals["photos"] == want["photos"] and rep.totals["errors"] == want["errors"]
    assert rep.totals["detections"] == all_dets
    assert any("not a JSON record" in p for p in rep.problems)
    rows = {r.brand: r for r in rep.brands}
    assert [r.brand for r in rep.brands] == ["acme", "globex", "initech"]  # most photos first
    for b, t in want["brands"].items():
        r, areas = rows[b], np.array(t["areas"])
        assert r.photos == t["photos"] and r.photo_share == pytest.approx(t["photos"] / want["photos"], abs=1e-6)
        assert r.detections == len(areas) and r.share_of_voice == pytest.approx(len(areas) / all_dets, abs=1e-6)
        assert r.area_share_mean == pytest.approx(areas.mean(), rel=1e-4)
        for q, got in ((10, r.area_share_p10), (50, r.area_share_p50), (90, r.area_share_p90)):
            assert got == pytest.approx(np.percentile(areas, q, method="inverted_cdf"), rel=0.012), q  # one log bin
        proms = np.array(t["proms"])
        assert r.prominence_mean == pytest.approx(proms.mean(), abs=1e-4)
        assert r.prominence_p50 == pytest.approx(np.percentile(proms, 50, method="inverted_cdf"), abs=1.5e-3)
        assert r.zones == t["zones"]
        assert r.threshold == 0.5
    # The files agree with the value.
    files = rep.write(tmp_path / "rep")
    with open(files["csv"]) as f:
        table = {row["brand"]: row for row in csv.DictReader(f)}
    assert int(table["globex"]["photos"]) == want["brands"]["globex"]["photos"]
    assert float(table["acme"]["area_share_mean"]) == pytest.approx(rows["acme"].area_share_mean)
    summary = json.loads(files["json"].read_text())
    assert summary["schema"] == "logo-detector/report@1"
    assert summary["errors"]["count"] == want["errors"] and len(summary["errors"]["listed"]) == want["errors"]
    assert summary["errors"]["reasons"] == {"not an image (unrecognised format)": want["errors"]}
    top = summary["gallery"]["acme"]["top"]
    assert [t["prominence"] for t in top] == sorted(want["brands"]["acme"]["proms"], reverse=True)[:8]
    assert "index.html" in {p.name for p in (tmp_path / "rep").iterdir()}


def test_report_python_api_takes_scan_results_and_by_path(tmp_path: Path) -> None:
    from detector.geometry import Detection
    from detector.results.record import ScanResult

    results = [
        ScanResult(
            path=f"shots/2024-0{m}/x{i}.jpg",
            width=100,
            height=100,
            labels=["acme"],
            scores={"acme": 0.9},
            boxes=[Detection("acme", 0.9, 0, 0, 10 * m, 10 * m, 1.0)],
        )  # fmt: skip
        for m in (1, 2, 3)
        for i in range(m)
    ]
    rep = build(results, by=r"path:(\d{4}-\d{2})")
    assert rep.brands[0].photos == 6 and rep.time_items == {"2024-01": 1, "2024-02": 2, "2024-03": 3}
    assert {k: v[1] for k, v in rep.time_series["acme"].items()} == {"2024-01": 1, "2024-02": 2, "2024-03": 3}
    page = rep.write_html(tmp_path / "api")
    assert 'id="plot-prominence-over-time"' in page.read_text()


def test_report_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    r = run_cli("report", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n[1, 2]\n")
    r = run_cli("report", str(bad), str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"), "--by", "path:(")
    assert r.returncode == 2 and "by path:(: not a regular expression" in r.stderr and "Traceback" not in r.stderr


# -- video ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scanned(exported_onnx, scene_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of photos (synthetic scenes), one broken file and a video, scanned by the real CLI."""
    folder = tmp_path_factory.mktemp("mixed") / "media"
    folder.mkdir()
    for p in sorted((scene_data / "scenes" / "images").glob("*.jpg"))[:10]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    write_demo_video(folder / "clip.avi", seconds=8.0, fps=10.0, logo_from_s=LOGO_FROM, logo_to_s=LOGO_TO)
    out = folder.parent / "results.jsonl"
    r = run_cli("scan", str(folder), "--model", str(exported_onnx.path), "--every", str(EVERY),
                "--format", "jsonl", "--output", str(out))  # fmt: skip
    assert r.returncode == 1, r.stderr  # the broken file is an error record; everything else was scanned
    assert "16 of them frames of 1 video(s)" in r.stderr
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_video_scan_finds_one_appearance_within_one_step_of_the_truth(scanned: Path) -> None:
    recs = _lines(scanned)
    frames = [r for r in recs if r.get("frame") is not None]
    assert len(frames) == 16 and all(r["path"].endswith("clip.avi") for r in frames)
    assert [r["time_s"] for r in frames] == [EVERY * k for k in range(16)]
    assert all(len(r["exposure"]) == len(r["boxes"]) for r in frames)
    apps = [r for r in recs if r.get("record") == "appearance"]
    assert len(apps) == 1 and apps[0]["label"] == "demo-logo", apps
    assert abs(apps[0]["start_s"] - LOGO_FROM) <= EVERY and abs(apps[0]["end_s"] - LOGO_TO) <= EVERY, apps
    video = [r for r in recs if r.get("record") == "video"]
    assert len(video) == 1 and video[0]["duration_s"] == pytest.approx(8.0) and video[0]["samples"] == 16
    photos = [r for r in recs if r.get("record") is None and r.get("frame") is None]
    assert len(photos) == 11 and sum(bool(r["errors"]) for r in photos) == 1
    assert all(r["schema"] == "logo-detector/scan@2" and "exposure" in r for r in photos if not r["errors"])


def test_video_resume_rescans_only_missing_frames(scanned: Path, exported_onnx, tmp_path: Path) -> None:
    clip = next(p for p in scanned.parent.rglob("clip.avi"))
    out = tmp_path / "clip.jsonl"
    frames = [r for r in _lines(scanned) if r.get("frame") is not None]
    out.write_text("".join(json.dumps(r) + "\n" for r in frames[:9]) + frames[9:10][0]["path"][:5])  # torn
    args = ["scan", str(clip), "--model", str(exported_onnx.path), "--every", str(EVERY), "--format", "jsonl",
            "--output", str(out), "--resume"]  # fmt: skip
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    recs = _lines(out)
    got = [r["frame"] for r in recs if r.get("frame") is not None]
    assert got == [f["frame"] for f in frames]  # the 9 kept, then the 7 missing: none twice
    apps = [r for r in recs if r.get("record") == "appearance"]
    assert len(apps) == 1 and abs(apps[0]["start_s"] - LOGO_FROM) <= EVERY and abs(apps[0]["end_s"] - LOGO_TO) <= EVERY
    again = run_cli(*args)
    assert again.returncode == 0 and "(1 already done)" in again.stderr and len(_lines(out)) == len(recs)


def test_video_that_cannot_be_decoded_is_an_error_record(exported_onnx, tmp_path: Path) -> None:
    bad = tmp_path / "fake.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else")
    r = run_cli("scan", str(bad), "--model", str(exported_onnx.path), "--format", "jsonl")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert rec["path"] == str(bad) and "cannot be decoded as a video" in rec["errors"][0]
    r = run_cli("scan", str(bad), "--model", str(exported_onnx.path), "--every", "1", "--fps", "2")
    assert r.returncode == 2 and "not both" in r.stderr


# -- the page in a real browser ---------------------------------------------------------------------


def test_report_page_in_headless_chromium(scanned: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report"
    r = run_cli("report", str(scanned), "--out", str(out), "--gallery", "4")
    assert r.returncode == 0, r.stderr
    assert "10 photo(s), 16 frame(s)" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    row = summary["brands"][0]
    assert row["brand"] == "demo-logo" and row["exposure_s"] == pytest.approx(LOGO_TO - LOGO_FROM, abs=2 * EVERY)
    assert row["screen_share"] == pytest.approx(row["exposure_s"] / 8.0, abs=1e-6)
    docs = ROOT / "docs" if os.environ.get("DETECT_UPDATE_SCREENSHOTS") else tmp_path
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            for name, viewport, mobile in (
                ("desktop", {"width": 1280, "height": 900}, False),
                ("phone", {"width": 390, "height": 844}, True),
            ):
                ctx = browser.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile)
                page = ctx.new_page()
                urls: list[str] = []
                page.on("request", lambda req, seen=urls: seen.append(req.url))
                page.goto((out / "index.html").as_uri())
                page.wait_for_load_state("load")
                outside = [u for u in urls if not (u.startswith("file://") or u.startswith("data:"))]
                assert not outside, outside
                table = page.locator("#brand-table")
                assert table.is_visible() and "demo-logo" in table.inner_text()
                plots = page.locator(".plot img")
                assert plots.count() >= 3
                widths = plots.evaluate_all("els => els.map(e => e.complete ? e.naturalWidth : 0)")
                assert all(w > 0 for w in widths), widths  # every plot decoded
                cards = page.locator("#gallery .card img")
                assert cards.count() >= 4 and cards.first.evaluate("e => e.naturalWidth") > 0
                assert "1 error record" in page.inner_text("#error-count")
                assert "broken.jpg" in page.inner_text("#error-list")
                assert "clip.avi" in page.inner_text("#appearance-table")
                page_width = page.evaluate("document.documentElement.scrollWidth")
                assert page_width <= viewport["width"] + 1  # the table scrolls in its box, the page does not
                # The README shows the desktop page (DETECT_UPDATE_SCREENSHOTS=1 refreshes docs/report-desktop.png).
                shot = (docs if name == "desktop" else tmp_path) / f"report-{name}.png"
                page.screenshot(path=str(shot), full_page=name == "desktop")
                ctx.close()
        finally:
            browser.close()
    assert (docs / "report-desktop.png").stat().st_size > 20_000


def test_demo_report_step_writes_photos_and_video_exposure(calibrated_model, scene_data: Path, tmp_path: Path) -> None:
    """The demo's last step, with a calibrated model as in the demo (the uncalibrated test model's
    image threshold, 0.47, passes the 640x480 clip's background texture in every frame)."""
    from detector.backends import open_backend
    from detector.demo import DEMO_VIDEO, report_step

    images = sorted((scene_data / "scenes" / "images").glob("*.jpg"))[:4]
    page = report_step(open_backend(calibrated_model), images, tmp_path / "demo-output", log=lambda s: None)
    assert page == tmp_path / "demo-output" / "report" / "index.html" and page.is_file()
    summary = json.loads((page.parent / "summary.json").read_text())
    assert summary["totals"]["photos"] == 4 and summary["totals"]["videos"] == 1
    shown = DEMO_VIDEO["logo_to_s"] - DEMO_VIDEO["logo_from_s"]
    assert summary["brands"][0]["exposure_s"] == pytest.approx(shown, abs=2 * DEMO_VIDEO["every_s"])
    assert (page.parent / "summary.csv").is_file()


def test_max_frames_stops_early_and_the_video_record_says_what_was_covered(scanned: Path, exported_onnx) -> None:
    clip = next(p for p in scanned.parent.rglob("clip.avi"))
    r = run_cli(
        "scan", str(clip), "--model", str(exported_onnx.path), "--fps", "1", "--max-frames", "3", "--format", "jsonl"
    )
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["time_s"] for x in recs if x.get("frame") is not None] == [0.0, 1.0, 2.0]
    video = recs[-1]
    assert video["record"] == "video" and video["samples"] == 3
    assert video["duration_s"] == pytest.approx(3.0) and video["video_duration_s"] == pytest.approx(8.0)
