"""A contact sheet of synthetic scenes of the demo logo with their boxes (docs/synth-contact-sheet.jpg).

Drawn from the project's own demo logo only, so it may be committed and shown in the README.

    .venv/bin/python benchmarks/contact_sheet.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from detector.synth.compose import builtin_backgrounds
    from detector.synth.demo_logo import demo_logo
    from detector.synth.scenes import SceneConfig, render_scene, scene_rng, trim_alpha

    bgs = builtin_backgrounds(np.random.default_rng(0))
    logos = {"demo-logo": trim_alpha(demo_logo(256))}
    others = [
        trim_alpha(np.dstack([np.full((80, 120, 3), c, np.uint8), np.full((80, 120), 255, np.uint8)]))
        for c in ((200, 40, 40), (30, 90, 200))
    ]
    cells = []
    for i in range(12):
        s = render_scene(logos, bgs, SceneConfig(), scene_rng(7, i), others)
        img = s.image.copy()
        for b in s.boxes:
            cv2.rectangle(img, (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2)), (0, 255, 0), 2)
        cells.append(cv2.resize(img, (320, 240), interpolation=cv2.INTER_AREA))
    sheet = np.vstack([np.hstack(cells[r * 4 : r * 4 + 4]) for r in range(3)])
    out = ROOT / "docs" / "synth-contact-sheet.jpg"
    out.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"written {out}")


if __name__ == "__main__":
    main()
