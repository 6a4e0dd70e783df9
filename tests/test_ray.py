"""`detect scan --engine ray` on a real Ray cluster (`ray start --head` on 127.0.0.1, 2 CPUs), with the
session's real ONNX model: the records equal the local engine's (synthetic scenes plus the hostile
corpus), a SIGKILLed actor is restarted and its batch retried with every input recorded exactly once,
`--resume` after a killed driver scans nothing again, and `file://` URIs, path lists and Parquet work.

The cluster is started with `--block` in its own session and stopped by ending that session's
processes by id: `ray stop` would end every Ray process of the user on the machine, other people's too.
"""

from __future__ import annotations

import doctest
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from detector.results.record import path_from_record
from tests import hostile_corpus as hc
from tests.helpers import ROOT, run_cli

ray = pytest.importorskip("ray")

RAY = Path(sys.executable).parent / "ray"
LIMITS = ["--max-pixels", str(hc.MAX_PIXELS), "--max-file-mb", str(hc.MAX_FILE_MB)]
RUN_S = 600  # the longest any scan here may take (measured: 20-60 s on 2 shared cores)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    """Processes of the session the cluster was started in (all of them ours)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


@pytest.fixture(scope="module")
def cluster():
    """A real head node on 127.0.0.1 with 2 CPUs; (address, session id of its processes).

    With token authentication and a token of its own, given to the head and to every scan here through
    the environment (Ray sends a token to an explicit --address only with RAY_AUTH_MODE=token)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "token")
        env.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        yield from _head()


def _head():
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-t", dir="/tmp"))  # short: Ray's socket paths have a length cap
    log = open(temp / "start.log", "wb")  # noqa: SIM115
    cmd = [str(RAY), "start", "--head", "--port", str(port), "--num-cpus", "2", "--node-ip-address", "127.0.0.1"]
    cmd += ["--include-dashboard=false", "--temp-dir", str(temp), "--block", "--disable-usage-stats"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start failed: {(temp / 'start.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield f"127.0.0.1:{port}", proc.pid
    # Every process of this cluster (head, raylet, workers), by session id, at once: the cluster is
    # thrown away, and a SIGTERM to `ray start --block` took its full 30-second grace period every time.
    for pid in _session_pids(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    proc.wait(timeout=30)
    log.close()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def scenes(scene_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic scenes in a folder of their own."""
    out = tmp_path_factory.mktemp("ray-scenes") / "scenes"
    out.mkdir()
    for p in sorted((scene_data / "scenes" / "images").glob("*.jpg"))[:12]:
        shutil.copy(p, out / p.name)
    return out


@pytest.fixture(scope="module")
def mixed(scenes: Path, tmp_path_factory: pytest.TempPathFactory):
    """The scenes plus the whole hostile corpus (bad, odd and malicious files and names) in one folder."""
    root = tmp_path_factory.mktemp("ray-mixed") / "in"
    shutil.copytree(scenes, root / "scenes")
    cases, goods = hc.build(root / "hostile")
    return root, cases, goods


def _records(path: Path) -> dict[str, list[dict]]:
    """Image records by path (each path's list should hold exactly one); a torn last line is left out."""
    out: dict[str, list[dict]] = {}
    for line in path.read_bytes().split(b"\n")[:-1]:
        rec = json.loads(line)
        out.setdefault(path_from_record(rec), []).append(rec)
    return out


def _iou(a: dict, b: dict) -> float:
    w = max(0.0, min(a["x2"], b["x2"]) - max(a["x1"], b["x1"]))
    h = max(0.0, min(a["y2"], b["y2"]) - max(a["y1"], b["y1"]))
    inter = w * h
    union = (a["x2"] - a["x1"]) * (a["y2"] - a["y1"]) + (b["x2"] - b["x1"]) * (b["y2"] - b["y1"]) - inter
    return inter / union if union > 0 else float(a == b)


def _assert_same(ray_rec: dict, local_rec: dict, name: str) -> None:
    for key in ("has_logo", "labels", "errors", "sha256", "width", "height", "notes", "thresholds"):
        assert ray_rec.get(key) == local_rec.get(key), f"{name}: {key} {ray_rec.get(key)} != {local_rec.get(key)}"
    assert len(ray_rec["boxes"]) == len(local_rec["boxes"]), name
    for a, b in zip(ray_rec["boxes"], local_rec["boxes"], strict=True):
        assert a["label"] == b["label"] and _iou(a, b) >= 0.99, f"{name}: {a} vs {b}"
    for label, score in local_rec["scores"].items():
        assert abs(ray_rec["scores"][label] - score) < 1e-3, name


def _ray_scan(address: str, model: Path, *args: str) -> list[str]:
    return ["scan", *args, "--model", str(model), "--engine", "ray", "--address", address]


def test_records_equal_the_local_engine(cluster, mixed, exported_onnx, tmp_path: Path) -> None:
    root, cases, goods = mixed
    model = exported_onnx.path
    local, on_ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    common = [str(root), "--format", "jsonl", *LIMITS]
    r_local = run_cli("scan", *common, "--output", str(local), "--model", str(model), timeout=RUN_S)
    r_ray = run_cli(*_ray_scan(cluster[0], model, *common, "--output", str(on_ray), "--actors", "2"), timeout=RUN_S)
    assert r_local.returncode == r_ray.returncode == 1, r_ray.stderr[-3000:]  # 1: some files are bad
    assert "Traceback" not in r_ray.stderr, r_ray.stderr[-3000:]
    a, b = _records(on_ray), _records(local)
    assert a.keys() == b.keys()
    assert all(len(v) == 1 for v in a.values()), [k for k, v in a.items() if len(v) > 1]
    for name in a:
        _assert_same(a[name][0], b[name][0], name)
    base = os.fsencode(root / "hostile") + b"/"
    for case in cases:  # and the corpus's own expectations, through the ray engine
        name = os.fsdecode(base + case.name)
        if case.expect == "skip":
            assert name not in a, case.label
        elif case.expect == "ok":
            assert not a[name][0]["errors"], (case.label, a[name][0]["errors"])
        elif case.expect == "error":
            assert case.reason in a[name][0]["errors"][0], (case.label, a[name][0]["errors"])
    assert all(not a[os.fsdecode(base + g)][0]["errors"] for g in goods)
    assert sum(1 for v in a.values() if v[0]["has_logo"]) >= 10  # the scenes hold the demo logo


def _actor_pids(sid: int) -> list[int]:
    return [p for p in _session_pids(sid) if "ScanActor" in _cmdline(p)]


def _wait_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = RUN_S) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_bytes().count(b"\n") if path.exists() else 0
        if lines >= n or proc.poll() is not None:
            return lines
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{path}: fewer than {n} records after {timeout} s")


def _popen(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log, "wb") as err:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), *args], stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT
        )


def test_a_killed_actor_is_restarted_and_every_input_recorded_once(
    cluster, scenes, exported_onnx, tmp_path: Path
) -> None:
    address, sid = cluster
    out = tmp_path / "out.jsonl"
    args = _ray_scan(address, exported_onnx.path, str(scenes), "--format", "jsonl", "--output", str(out))
    proc = _popen([*args, "--actors", "2", "--ray-batch-size", "1"], tmp_path / "err.log")
    written = _wait_lines(out, 1, proc)
    actors = _actor_pids(sid)
    assert proc.poll() is None and written < 12 and actors, "the scan must still run when an actor is killed"
    victim = actors[0]
    os.kill(victim, signal.SIGKILL)
    seen = set(actors)
    deadline = time.monotonic() + RUN_S
    while proc.poll() is None and time.monotonic() < deadline:
        seen.update(_actor_pids(sid))
        time.sleep(0.1)
    assert proc.wait(timeout=10) == 0, (tmp_path / "err.log").read_text()[-3000:]
    assert len(seen) > len(actors), f"no actor was started again after the kill: {seen}"
    recs = _records(out)
    assert sorted(recs) == sorted(str(p) for p in scenes.glob("*.jpg"))
    assert Counter(len(v) for v in recs.values()) == {1: 12}
    assert all(not v[0]["errors"] for v in recs.values())
    assert victim not in _actor_pids(sid)


def test_resume_after_a_killed_driver_scans_nothing_written(cluster, scenes, exported_onnx, tmp_path: Path) -> None:
    address, _ = cluster
    out = tmp_path / "out.jsonl"
    args = _ray_scan(address, exported_onnx.path, str(scenes), "--format", "jsonl", "--output", str(out))
    args += ["--actors", "2", "--ray-batch-size", "1"]
    proc = _popen(args, tmp_path / "err1.log")
    _wait_lines(out, 3, proc)
    os.kill(proc.pid, signal.SIGKILL)  # the driver: its actors go with it
    proc.wait()
    first = _records(out)  # complete lines only (a torn last one is cut by --resume)
    assert 3 <= len(first) < 12, "the driver must be killed mid-run"
    again = run_cli(*args, "--resume", timeout=RUN_S)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"({len(first)} already done)" in again.stderr
    recs = _records(out)
    assert sorted(recs) == sorted(str(p) for p in scenes.glob("*.jpg"))
    assert Counter(len(v) for v in recs.values()) == {1: 12}  # nothing written was scanned again
    for name, (rec,) in first.items():
        assert recs[name] == [rec]


def test_file_uri_and_path_list_to_parquet_match_local(cluster, scenes, exported_onnx, tmp_path: Path) -> None:
    """A `file://` folder and a path list (relative lines, a URI line) on the cluster, written as Parquet,
    against the local engine's JSONL of the folder."""
    import pyarrow.parquet as pq

    names = sorted(p.name for p in scenes.glob("*.jpg"))
    plist = tmp_path / "paths.txt"
    rel = os.path.relpath(scenes, tmp_path)
    plist.write_text("\n".join([f"{rel}/{names[0]}", "", f"{scenes.as_uri()}/{names[1]}"]) + "\n")
    local = tmp_path / "local.jsonl"
    model = exported_onnx.path
    r = run_cli("scan", str(scenes), "--model", str(model), "--format", "jsonl", "--output", str(local), timeout=RUN_S)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "ray.parquet"
    r = run_cli(*_ray_scan(cluster[0], model, scenes.as_uri(), str(plist), "--format", "parquet", "--output", str(out)))
    assert r.returncode == 0, r.stderr[-3000:]
    rows = pq.read_table(out).to_pylist()
    by_name = Counter(row["path"] for row in rows)
    uris = {f"{scenes.as_uri()}/{n}" for n in names}
    assert set(by_name) == uris | {str(scenes / names[0])} and set(by_name.values()) == {1}
    expected = {Path(k).name: v[0] for k, v in _records(local).items()}
    for row in rows:
        row["scores"], row["thresholds"] = dict(row["scores"]), dict(row["thresholds"] or {})
        _assert_same(row, expected[row["path"].rsplit("/", 1)[1]], row["path"])


def test_bad_ray_settings_are_one_line(cluster, exported_onnx, scenes: Path, tmp_path: Path) -> None:
    model = str(exported_onnx.path)
    r = run_cli(*_ray_scan(cluster[0], exported_onnx.path, str(scenes), "--actor-gpus", "1"))
    assert r.returncode == 2 and "--actor-gpus 1: the cluster has 0 GPUs" in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    port = _free_port()  # nothing listens there
    r = run_cli("scan", str(scenes), "--model", model, "--engine", "ray", "--address", f"127.0.0.1:{port}")
    assert r.returncode == 2 and "nothing answers there" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run_cli("scan", str(scenes), "--model", model, "--engine", "ray", "--out", str(tmp_path / "ann"))
    assert r.returncode == 2 and "needs the local engine" in r.stderr
    r = run_cli("scan", str(scenes), "--model", model, "--engine", "ray", "--actors", "0")
    assert r.returncode == 2 and "actors must be a whole number" in r.stderr


def test_path_lists_and_uris_are_listed_like_named_paths(scenes: Path, tmp_path: Path) -> None:
    from detector.engines.ray_sources import as_uri, list_sources
    from detector.results.folders import list_images

    names = sorted(scenes.glob("*.jpg"))
    plist = tmp_path / "photos.lst"
    plist.write_bytes(b"\n".join([str(names[0]).encode(), b"", os.path.relpath(names[1], tmp_path).encode()]))
    assert list_images([plist]) == [names[0], names[1]]
    assert as_uri(Path("s3://bucket/photos")) == "s3://bucket/photos"  # a Path folds the slashes
    assert as_uri(Path(scenes.as_uri())) == scenes.as_uri() and as_uri(scenes) is None
    listing = list_sources([Path(scenes.as_uri()), plist, scenes])
    assert [it.name for it in listing.items] == [f"{scenes.as_uri()}/{p.name}" for p in names] + [str(p) for p in names]
    assert listing.roots == [scenes.as_uri()]


@pytest.mark.parametrize("name", ["detector.engines.ray_options", "detector.engines.ray_engine"])
def test_docstring_examples_run(name: str) -> None:
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_without_ray_the_cli_says_how_to_install_it(exported_onnx, scenes: Path, tmp_path: Path) -> None:
    """A Python where `import ray` fails (a directory on PYTHONPATH that shadows it with a broken module)."""
    shadow = tmp_path / "no-ray"
    (shadow / "ray").mkdir(parents=True)
    (shadow / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])}
    r = run_cli("scan", str(scenes), "--model", str(exported_onnx.path), "--engine", "ray", env=env)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip() == "error: the ray engine needs Ray: pip install 'logo-detector[ray]'"
