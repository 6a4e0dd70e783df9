"""Scenes per second of `detect synth` for 640x480 scenes (the issue asks for at least 50 on 2 cores).

.venv/bin/python benchmarks/synth_speed.py [--scenes 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from detector.synth import SynthConfig, synthesize
    from detector.synth.compose import builtin_backgrounds
    from detector.synth.demo_logo import demo_logo
    from detector.synth.scenes import SceneConfig, render_scene, scene_rng, trim_alpha

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scenes", type=int, default=300)
    args = p.parse_args()
    n = args.scenes
    rows = []
    bgs = builtin_backgrounds(np.random.default_rng(0))
    logos = {"demo-logo": trim_alpha(demo_logo(256))}
    cfg = SceneConfig()
    t = time.perf_counter()
    for i in range(n):
        render_scene(logos, bgs, cfg, scene_rng(0, i))
    rows.append(("render only, in memory, 1 thread", n / (time.perf_counter() - t)))
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            r = synthesize(SynthConfig(out=Path(tmp) / f"a{workers}", scenes=n, tiles=False, workers=workers))
            rows.append((f"detect synth, scenes + COCO/CSV written, {workers} thread(s)", r.scenes / r.seconds))
        r = synthesize(SynthConfig(out=Path(tmp) / "b", scenes=n, tile_size=128, workers=2))
        rows.append(("detect synth, scenes + tiles (128 px), 2 threads", r.scenes / r.seconds))
    table = Table(title=f"synthetic scenes per second, 640x480, {n} scenes, {os.cpu_count()} cores")
    table.add_column("what")
    table.add_column("scenes/s", justify="right")
    for what, rate in rows:
        table.add_row(what, f"{rate:.0f}")
    Console().print(table)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "synth-speed.json").write_text(
        json.dumps(
            {
                "scenes": n,
                "size": "640x480",
                "rows": [{"what": w, "scenes_per_s": round(r, 1)} for w, r in rows],
                "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
