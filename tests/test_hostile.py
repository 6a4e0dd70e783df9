"""The hostile-input corpus (tests/hostile_corpus.py) mixed with good images, through `detect scan` (a
subprocess) and `/v1/scan/batch` (a real server): every good image has its result, every bad file a
record or a documented skip, nothing hangs (each case under a time limit) and peak memory stays under
a bound. Also: the option sweep against the running server, zip members counted against
--max-files, Pillow's own pixel limit under a larger --max-pixels, and the CLI's exit codes.

On the code as it was at commit 9ca9ee9 this corpus failed in many ways at once: the non-UTF-8 name
aborted the folder scan, the thin PNGs planned tens of thousands of tiles (minutes, gigabytes), the
2 GiB sparse file was read whole, and the server answered hostile option values with 500s.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.results.record import path_from_record
from detector.serve.options import API_OPTIONS
from detector.serve.process import ServerProcess
from tests import hostile_corpus as hc
from tests.helpers import ROOT, run_cli

CASE_SECONDS = 30  # no case may take longer (the slowest measured: ~0.3 s)
CLI_RSS_MIB = 1024  # measured ~350 MiB with the tiny ONNX model
SERVER_RSS_MIB = 1024


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hostile") / "in"
    cases, goods = hc.build(root)
    return root, cases, goods


#: Runs argv[2:] and writes its peak RSS (KiB) to argv[1]. A child's ru_maxrss starts from its parent's
#: at exec (Linux keeps the high-water mark across exec), so the scan is started from this small
#: process, not from pytest (which holds TensorFlow and the session model).
_MEASURE = (
    "import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, s, ru = os.wait4(p.pid, 0); "
    "open(sys.argv[1], 'w').write(str(ru.ru_maxrss)); sys.exit(os.waitstatus_to_exitcode(s))"
)


def run_timed(cmd: list[str], out: Path, timeout: float) -> tuple[int, float, list[tuple[float, dict]], int, str]:
    """Run `cmd` (a scan writing JSONL to `out`); (exit code, seconds, [(arrival s, record)], peak RSS
    KiB of the scan process alone, stderr). Records are timed as they appear in the file."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    err_path, rss_path = out.with_suffix(".stderr"), out.with_suffix(".rss")
    cmd = [sys.executable, "-c", _MEASURE, str(rss_path), *cmd]
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT, start_new_session=True)
        t0 = time.monotonic()
        arrivals: list[tuple[float, dict]] = []
        seen = 0
        while True:
            finished = proc.poll() is not None
            if out.exists():
                lines = out.read_bytes().split(b"\n")[:-1]
                for line in lines[seen:]:
                    arrivals.append((time.monotonic() - t0, json.loads(line)))
                seen = len(lines)
            if finished:
                break
            if time.monotonic() - t0 > timeout:
                os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the scan
                proc.wait()
                pytest.fail(f"the scan was still running after {timeout} s ({seen} records)")
            time.sleep(0.02)
    rss = int(rss_path.read_text())
    return proc.returncode, time.monotonic() - t0, arrivals, rss, err_path.read_text(errors="replace")


def _check_records(cases, goods, records: dict[bytes, dict], where: str) -> None:
    for name in goods:
        rec = records.get(name)
        assert rec is not None and not rec["errors"] and rec["width"] > 0, (where, name, rec)
    for case in cases:
        rec = records.get(case.name)
        if case.expect == "skip":
            assert rec is None, (where, case.label, "should be skipped by the folder walk")
            continue
        assert rec is not None, (where, case.label, "has no record")
        if case.expect == "ok":
            assert not rec["errors"] and rec["width"] > 0, (where, case.label, rec["errors"])
        elif case.expect == "error":
            assert rec["errors"] and rec["boxes"] == [], (where, case.label)
            assert case.reason in rec["errors"][0], (where, case.label, rec["errors"])
        assert all("\n" not in e for e in rec["errors"]), (where, case.label)


def _gaps(arrivals: list[tuple[float, dict]]) -> float:
    times = [0.0] + [t for t, _ in arrivals]
    return max(b - a for a, b in zip(times, times[1:], strict=False))


def test_corpus_through_the_cli(exported_onnx, corpus, tmp_path: Path) -> None:
    root, cases, goods = corpus
    out = tmp_path / "r.jsonl"
    cmd = [sys.executable, str(ROOT / "cli.py"), "scan", str(root), "--model", str(exported_onnx.path)]
    cmd += ["--format", "jsonl", "--output", str(out), "--max-pixels", str(hc.MAX_PIXELS)]
    cmd += ["--max-file-mb", str(hc.MAX_FILE_MB)]
    code, seconds, arrivals, rss_kib, stderr = run_timed(cmd, out, timeout=300)
    assert code == 1, stderr  # some images failed (exit 1), every other one scanned
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    base = os.fsencode(root) + b"/"
    records = {os.fsencode(path_from_record(r))[len(base) :]: r for _, r in arrivals}
    assert len(records) == len(arrivals)  # one record per file
    _check_records(cases, goods, records, "cli")
    assert _gaps(arrivals) < CASE_SECONDS, [(round(t, 2), r["path"][-30:]) for t, r in arrivals]
    assert rss_kib / 1024 < CLI_RSS_MIB, f"peak RSS {rss_kib / 1024:.0f} MiB"
    print(f"CLI: {len(arrivals)} records in {seconds:.1f} s, peak RSS {rss_kib / 1024:.0f} MiB")


@pytest.fixture(scope="module")
def server(exported_onnx, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("hostile-serve") / "server.log"
    args = ["--max-upload-mb", str(hc.UPLOAD_MB), "--max-pixels", str(hc.MAX_PIXELS), "--max-files", "200"]
    with ServerProcess(exported_onnx.path, *args, log_path=log) as srv:
        yield srv


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def batch(server: ServerProcess, parts: list, timeout: float = 300) -> list[tuple[float, dict]]:
    """POST parts to /v1/scan/batch; [(arrival s, record)] as the NDJSON lines come."""
    t0 = time.monotonic()
    got = []
    with httpx.Client(base_url=server.url, timeout=timeout) as c:
        with c.stream("POST", "/v1/scan/batch", files=parts) as r:
            assert r.status_code == 200, r.read()
            for line in r.iter_lines():
                if line.strip():
                    got.append((time.monotonic() - t0, json.loads(line)))
    return got


def test_corpus_through_the_server(server: ServerProcess, corpus) -> None:
    root, cases, goods = corpus
    uploads = [(name, data) for name, data in goods.items()]
    uploads += [(c.name, hc.upload_bytes(root, c)) for c in cases if c.server and c.expect != "skip"]
    # multipart names travel as text: index maps each line back to its upload
    parts = [("files", (name.decode("utf-8", "replace").replace("\n", " "), data)) for name, data in uploads]
    _reset_peak(server.proc.pid)
    arrivals = batch(server, parts)
    peak = _peak_rss_mib(server.proc.pid)
    by_index = {r["index"]: r for _, r in arrivals}
    assert sorted(by_index) == list(range(len(uploads)))
    records = {uploads[i][0]: r for i, r in by_index.items()}
    server_cases = [c for c in cases if c.server and c.expect != "skip"]
    _check_records(server_cases, goods, records, "server")
    assert _gaps(arrivals) < CASE_SECONDS
    assert peak < SERVER_RSS_MIB, f"server peak RSS {peak:.0f} MiB"
    assert httpx.get(server.url + "/healthz").json()["queue"]["active"] == 0


def test_zip_members_are_contained_and_reported(server: ServerProcess) -> None:
    members = hc.server_zip_cases()
    arrivals = batch(server, [("files", ("photos.zip", hc.zip_of(members), "application/zip"))])
    recs = {r["path"]: r for _, r in arrivals}
    assert len(recs) == len(members)
    for name, _, expect in members:
        assert bool(recs[name]["errors"]) == (expect == "error"), (name, recs[name]["errors"])
    assert not Path("/tmp/zip-slip.jpg").exists()


def test_max_files_counts_zip_members_and_the_files_after_them(server: ServerProcess) -> None:
    """--max-files 200: a zip of 150 members followed by 60 files is 210 images (was let through)."""
    members = [(f"m{i}.jpg", b"x", "error") for i in range(150)]
    parts = [("files", ("many.zip", hc.zip_of(members), "application/zip"))]
    parts += [("files", (f"f{i}.jpg", b"x")) for i in range(60)]
    r = httpx.post(server.url + "/v1/scan/batch", files=parts, timeout=120)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_files", r.text


HOSTILE_TEXT = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "infinity",
    "0",
    "-0",
    "-1",
    "1e308",
    "1e9",
    "1e-320",
    "0.999",
    "6",
    "2.0001",
    "",
    " ",
    "abc",
    "1,",
    "1,,2",
    ",",
    ",".join(["0.5"] * 9),
    "true",
    "false",
    "yes",
    "0x10",
    "1_000",
    "\u0661",
    "1" * 5000,
    "9" * 400 + ".5",
    "%00",
    "\x00",
    "1;2",
    "[1]",
    "{}",
    "null",
    "tiles",
    "dense",
    "gradcam++",
    "fuse",
]


@pytest.fixture(scope="module")
def keepalive(server: ServerProcess):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


TINY = hc.encode(np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8), "PNG")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(API_OPTIONS)),
    value=st.sampled_from(HOSTILE_TEXT) | st.text(max_size=16) | st.floats().map(repr) | st.integers().map(str),
    where=st.sampled_from(["query", "form"]),
)
def test_no_option_value_gives_a_500(keepalive: httpx.Client, name: str, value: str, where: str) -> None:
    """Every option over hostile text: 200, or 422 naming the option; the keep-alive connection lives on."""
    params, data = ({name: value}, {}) if where == "query" else ({}, {name: value})
    try:
        r = keepalive.post("/v1/scan", params=params, data=data, files={"files": ("t.png", TINY, "image/png")})
    except (httpx.InvalidURL, UnicodeEncodeError):  # the client cannot even send it (e.g. a NUL in a URL)
        return
    assert r.status_code in (200, 422), (name, value, r.status_code, r.text)
    if r.status_code == 422:
        err = r.json()["error"]
        assert err["code"] == "invalid_option" and name in err["message"], (name, value, err)
    else:
        assert r.json()["width"] == 64
    ok = keepalive.post("/v1/scan", files={"files": ("t.png", TINY, "image/png")})  # the same connection
    assert ok.status_code == 200


def test_the_issues_option_values_are_422_naming_the_option(keepalive: httpx.Client) -> None:
    for name, value in [
        ("scales", "nan"),
        ("scales", "inf"),
        ("scales", "1e9"),
        ("scales", "6"),
        ("min_logo", "nan"),
        ("max_logo", "inf"),
        ("overlap", "0.999"),
        ("max_windows", "100000"),
    ]:
        r = keepalive.post("/v1/scan", params={name: value}, files={"files": ("t.png", TINY)})
        assert r.status_code == 422 and name in r.json()["error"]["message"], (name, value, r.text)


def test_over_budget_image_is_422_on_scan_and_a_record_in_batch(keepalive: httpx.Client, server) -> None:
    strip = hc.png_with_header(65535, 1)
    r = keepalive.post("/v1/scan", files={"files": ("strip.png", strip)})
    assert r.status_code == 422 and r.json()["error"]["code"] == "over_budget", r.text
    recs = batch(server, [("files", ("strip.png", strip)), ("files", ("t.png", TINY))])
    by = {x["path"]: x for _, x in recs}
    assert "max_windows" in by["strip.png"]["errors"][0] and not by["t.png"]["errors"]


def _full_png(width: int, height: int) -> bytes:
    """A real greyscale PNG of zeros, every row present (a few hundred kB for ~100 Mpx)."""
    import struct

    rows = zlib.compress(b"\0" * ((width + 1) * height), 6)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_max_pixels_really_sets_the_decoders_limit(tmp_path: Path) -> None:
    """95 Mpx is over Pillow's own limit (89.5 Mpx), which silently overrode --max-pixels before."""
    from detector.errors import ImageLoadError
    from detector.images import load_image

    p = tmp_path / "big.png"
    p.write_bytes(_full_png(9500, 10000))
    assert load_image(p, max_pixels=10**9).pixels.shape == (10000, 9500, 3)
    with pytest.raises(ImageLoadError, match=r"too many pixels \(9500x10000 > 90,000,000\)"):
        load_image(p, max_pixels=90_000_000)


def test_exit_codes(exported_onnx, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.jpg"
    good.write_bytes(TINY)
    bad.write_bytes(b"not an image")
    model = str(exported_onnx.path)
    assert run_cli("scan", str(good), "--model", model).returncode == 0
    r = run_cli("scan", str(bad), "--model", model)
    assert r.returncode == 1 and "not an image" in r.stdout, (r.stdout, r.stderr)
    assert run_cli("scan", str(good), str(bad), "--model", model).returncode == 1
    assert run_cli("scan", str(good), "--model", str(tmp_path / "none.onnx")).returncode == 2
    assert run_cli("scan", str(good), "--model", model, "--format", "xml").returncode == 2
    assert run_cli("scan", "--model", model).returncode == 2  # usage: no input


def test_the_library_reads_within_its_caps(tmp_path: Path) -> None:
    """Stat before reading: a 2 GiB file is refused without reading it (it was read whole before)."""
    import tracemalloc

    from detector.errors import ImageLoadError
    from detector.images import load_image

    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.write(b"\xff\xd8")
        f.truncate(2 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError, match="file too large"):
            load_image(big)
        assert tracemalloc.get_traced_memory()[1] < 16 << 20
    finally:
        tracemalloc.stop()
    data = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(data, "PNG")
    small = tmp_path / "small.png"
    small.write_bytes(data.getvalue())
    with pytest.raises(ImageLoadError, match="file too large"):
        load_image(small, max_file_bytes=10)


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "x.jpg", "--model", "no-such-model"],
        ["export", "no-such-model", "--out", "m.onnx"],
        ["calibrate", "no-such-model", "no-such-scenes"],
        ["evaluate", "no-such-model", "no-such-data"],
        ["train", "no-such-data", "--out", "m"],
    ],
)
def test_a_wrong_path_is_refused_before_tensorflow_loads(args: list[str], tmp_path: Path) -> None:
    """A typo costs a second, not TensorFlow's 6-8 s import: the command's own process never imports it."""
    (tmp_path / "x.jpg").write_bytes(b"")
    code = (
        "import sys, cli\n"
        "sys.argv = ['detect', *sys.argv[1:]]\n"
        "try:\n    cli.run()\nexcept SystemExit as e:\n    print(e.code, 'tensorflow' in sys.modules)\n"
    )
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.stdout.split() == ["2", "False"], (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and ("no such" in r.stderr or "not a folder" in r.stderr), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_tensorflow_commands_print_no_start_up_chatter(trained_model: Path, tmp_path: Path) -> None:
    """TF is imported quietly wherever a command first needs it (the CLI no longer imports it up front)."""
    r = run_cli("export", str(trained_model), "--out", str(tmp_path / "m.onnx"), "--no-check")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"converting {trained_model} (Inception v3 to mixed2, 2 classes) with tf2onnx"
    ]
