"""Load on `detect serve` with each way of reaching the model, in one run: latency, throughput, memory.

.venv/bin/python benchmarks/serve_load.py [--model demo-output/model] [--requests 300] [--concurrency 16]

Three real server processes on 127.0.0.1, one per `--model-calls`: `batched` (micro-batching: the
tiles of concurrent requests merged into shared calls), `serial` (one model call at a time, each
request's tiles on their own: a server with a lock around its model) and `concurrent` (every request
thread calls the runtime itself, side by side). The same synthetic 320x240 scenes of the demo logo,
and httpx clients keeping `--concurrency` requests in flight. The load is sent in alternating rounds
(batched, serial, concurrent, batched, ...), so drift from anything else running on the machine falls
on all alike. Every response is checked against the image's reference result (one request per image,
sequential, before the load): status 200, size, verdict, scores within 0.01.

Two workloads:
- `small`: `scales=0.5`, one pyramid level, 2 tiles per image. A model call's fixed cost (~10 ms on 2
  cores) is then most of a request's model time: the case micro-batching is for.
- `pyramid`: the default pyramid (206 tiles per 320x240 image at 128 px, sent in calls of 32 tiles).
  Calls are already big; merging them should change little. Fewer requests (`--pyramid-requests`).

Writes benchmarks/results/serve-load.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)  # seconds, correct responses only
    wrong: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the load rounds
    cpu_seconds: float = 0.0  # the server process's CPU time (all threads) during them
    requests: int = 0
    batching: dict | None = None


def make_images(n: int) -> list[bytes]:
    """JPEGs of 320x240 scenes of the demo logo (0-3 logos each), the same bytes on every run."""
    import cv2
    import numpy as np

    from detector.synth.compose import builtin_backgrounds
    from detector.synth.demo_logo import demo_logo
    from detector.synth.scenes import SceneConfig, render_scene, scene_rng, trim_alpha

    bgs = builtin_backgrounds(np.random.default_rng(0))
    logos = {"demo-logo": trim_alpha(demo_logo(256))}
    cfg = SceneConfig(width=320, height=240)
    out = []
    for i in range(n):
        img = render_scene(logos, bgs, cfg, scene_rng(7, i)).image
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(buf.tobytes())
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads (Linux /proc), in seconds.

    Other jobs on a shared machine move wall-clock throughput around; the CPU the server itself
    burns per image is what the two modes really differ in, and it is much steadier.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def check(rec: dict, ref: dict) -> str:
    """'' if `rec` is the reference result of its image (up to float noise), else what differs."""
    if (rec.get("width"), rec.get("height")) != (ref["width"], ref["height"]) or rec.get("errors"):
        return f"size/errors {rec.get('width')}x{rec.get('height')} {rec.get('errors')}"
    if rec["has_logo"] != ref["has_logo"] or rec["labels"] != ref["labels"]:
        return f"verdict {rec['labels']} != {ref['labels']}"
    for c, s in ref["scores"].items():
        if abs(rec["scores"].get(c, -1) - s) > 0.01:
            return f"score {c} {rec['scores'].get(c)} != {s}"
    return ""


async def reference(url: str, images: list[bytes], query: str) -> list[dict]:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=300) as c:
        refs = []
        for i, img in enumerate(images):
            r = await c.post(f"/v1/scan?{query}", files={"files": (f"s{i}.jpg", img, "image/jpeg")})
            r.raise_for_status()
            refs.append(r.json())
        return refs


async def load_round(
    url: str, images: list[bytes], refs: list[dict], query: str, start: int, n: int, concurrency: int, out: Outcome
) -> None:
    """Requests start..start+n (image i % len(images)), at most `concurrency` in flight."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as c:

        async def one(i: int) -> None:
            k = i % len(images)
            async with gate:
                t = time.perf_counter()
                try:
                    r = await c.post(f"/v1/scan?{query}", files={"files": (f"s{k}.jpg", images[k], "image/jpeg")})
                    problem = check(r.json(), refs[k]) if r.status_code == 200 else f"HTTP {r.status_code}: {r.text}"
                except httpx.HTTPError as e:
                    problem = f"{e.__class__.__name__}: {e}"
                dt = time.perf_counter() - t
            if problem:
                out.wrong.append(f"request {i} (image {k}): {problem}")
            else:
                out.latencies.append(dt)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(start, start + n)))
        out.seconds += time.perf_counter() - t0
        out.requests += n


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] if len(xs) > 1 else xs[0]


def run_workload(
    servers: dict, images: list[bytes], query: str, requests: int, concurrency: int, rounds: int
) -> dict[str, Outcome]:
    import httpx

    refs = {mode: asyncio.run(reference(s.url, images, query)) for mode, s in servers.items()}
    base = next(iter(refs.values()))
    for mode, rs in refs.items():  # the servers must agree before their speed means anything
        for k, (a, b) in enumerate(zip(rs, base, strict=True)):
            problem = check(a, b)
            if problem:
                raise SystemExit(f"{mode}: reference of image {k} differs from the baseline's: {problem}")
    outcomes = {mode: Outcome() for mode in servers}
    before = {mode: httpx.get(s.url + "/healthz").json()["batching"] for mode, s in servers.items()}
    per_round = [requests // rounds + (1 if r < requests % rounds else 0) for r in range(rounds)]
    start = 0
    for n in per_round:
        for mode, s in servers.items():
            cpu0 = cpu_seconds(s.proc.pid)
            asyncio.run(load_round(s.url, images, refs[mode], query, start, n, concurrency, outcomes[mode]))
            outcomes[mode].cpu_seconds += cpu_seconds(s.proc.pid) - cpu0
        start += n
    for mode, s in servers.items():
        after = httpx.get(s.url + "/healthz").json()["batching"]
        if after and before[mode]:
            calls = after["model_calls"] - before[mode]["model_calls"]
            tiles = after["tiles"] - before[mode]["tiles"]
            outcomes[mode].batching = {
                "model_calls": calls,
                "mean_tiles_per_call": round(tiles / calls, 1) if calls else 0,
                "largest_call": after["largest_call"],
            }
    return outcomes


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from detector.api import default_model_path
    from detector.serve.process import ServerProcess

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="default: $DETECT_MODEL or demo-output/model")
    p.add_argument("--requests", type=int, default=300, help="requests per mode, small workload")
    p.add_argument("--pyramid-requests", type=int, default=32, help="requests per mode, pyramid workload (0: skip)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--images", type=int, default=12, help="distinct scenes, sent round-robin")
    p.add_argument("--rounds", type=int, default=5, help="alternations between the servers (pyramid: 2)")
    p.add_argument("--max-batch", type=int, default=128)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve-load.json")
    args = p.parse_args()
    model = args.model or default_model_path()
    console = Console(width=150)
    images = make_images(args.images)
    common = ["--no-access-log", "--max-queue", str(max(32, args.concurrency * 2))]
    modes = {
        "micro-batching": ["--model-calls", "batched", "--max-batch", str(args.max_batch)],
        "one call at a time": ["--model-calls", "serial"],
        "calls side by side": ["--model-calls", "concurrent"],
    }
    workloads = [("small", "scales=0.5", args.requests, args.rounds)]
    if args.pyramid_requests:
        workloads.append(("pyramid", "", args.pyramid_requests, 2))
    results = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        try:
            for mode, extra in modes.items():
                log = Path(tmp) / f"{mode.replace(' ', '-')}.log"
                console.print(f"starting {mode} server ...", highlight=False)
                servers[mode] = ServerProcess(model, *common, *extra, log_path=log)
            for name, query, n, rounds in workloads:
                console.print(f"workload {name}: {n} requests per mode, {args.concurrency} in flight", highlight=False)
                outcomes = run_workload(servers, images, query, n, args.concurrency, rounds)
                for mode, o in outcomes.items():
                    results.append(
                        {
                            "workload": name,
                            "query": query,
                            "mode": mode,
                            "requests": o.requests,
                            "correct": len(o.latencies),
                            "wrong": len(o.wrong),
                            "wrong_examples": o.wrong[:5],
                            "p50_ms": round(percentile(o.latencies, 50) * 1e3, 1),
                            "p95_ms": round(percentile(o.latencies, 95) * 1e3, 1),
                            "throughput_per_s": round(o.requests / o.seconds, 2),
                            "server_cpu_ms_per_image": round(o.cpu_seconds / o.requests * 1e3, 1),
                            "batching": o.batching,
                            "server_peak_rss_mb": peak_rss_mb(servers[mode].proc.pid),
                        }
                    )
        finally:
            for s in servers.values():
                s.stop()
    table = Table(title=f"detect serve, {args.concurrency} requests in flight, 320x240 scenes, {os.cpu_count()} cores")
    cols = (
        "workload",
        "mode",
        "requests",
        "correct",
        "p50 ms",
        "p95 ms",
        "images/s",
        "CPU ms/image",
        "tiles/call",
        "peak RSS MiB",
    )
    for col in cols:
        table.add_column(col, justify="left" if col in ("workload", "mode") else "right")
    for r in results:
        b = r["batching"]
        table.add_row(
            f"{r['workload']} ({r['query'] or 'default pyramid'})",
            r["mode"],
            str(r["requests"]),
            str(r["correct"]),
            f"{r['p50_ms']:.0f}",
            f"{r['p95_ms']:.0f}",
            f"{r['throughput_per_s']:.1f}",
            f"{r['server_cpu_ms_per_image']:.0f}",
            f"{b['mean_tiles_per_call']:.1f}" if b else "-",
            f"{r['server_peak_rss_mb']:,.0f}",
        )
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "model": str(model),
        "images": f"{args.images} synthetic 320x240 scenes (detector.synth.scenes, seed 7)",
        "concurrency": args.concurrency,
        "rounds": {name: rounds for name, _, _, rounds in workloads},
        "max_batch": args.max_batch,
        "seconds": round(time.perf_counter() - t_all, 1),
        "results": results,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"written to {args.out}", highlight=False)
    wrong = sum(r["wrong"] for r in results)
    if wrong:
        for r in results:
            for w in r["wrong_examples"]:
                console.print(f"[red]wrong:[/red] {r['workload']} {r['mode']}: {w}", highlight=False)
        raise SystemExit(f"{wrong} response(s) were wrong")


if __name__ == "__main__":
    main()
