"""Synthetic test images for `benchmarks/speed.py`, made once into a cache folder outside the project.

Scenes of the demo logo (`detector.synth.scenes.render_scene`, 0-3 logos each, distractors, JPEG quality 92),
the same bytes on every run: one seed per image size, image i is (seed, i).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path(os.environ.get("DETECT_CACHE", Path.home() / ".cache" / "logo-detector")) / "bench" / "speed"


def scene_images(width: int, height: int, n: int, folder: Path | None = None, seed: int = 11) -> list[Path]:
    """n JPEG scenes of width x height (cached); returns their paths, sorted."""
    import cv2
    import numpy as np

    from detector.synth.compose import builtin_backgrounds
    from detector.synth.demo_logo import demo_logo
    from detector.synth.scenes import SceneConfig, render_scene, scene_rng, trim_alpha

    folder = folder or CACHE / f"scenes-{width}x{height}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"scene-{i:04d}.jpg" for i in range(n)]
    missing = [(i, p) for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        bgs = builtin_backgrounds(np.random.default_rng(0))
        logos = {"demo-logo": trim_alpha(demo_logo(512 if max(width, height) > 1000 else 256))}
        cfg = SceneConfig(width=width, height=height)
        for i, p in missing:
            img = render_scene(logos, bgs, cfg, scene_rng(seed + width, i)).image
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
            if not ok:
                raise RuntimeError(f"could not encode {p}")
            tmp = p.with_suffix(".tmp")
            tmp.write_bytes(buf.tobytes())
            os.replace(tmp, p)
    return paths
