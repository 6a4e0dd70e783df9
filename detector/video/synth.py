"""A synthetic clip whose logo is on screen for a known interval: for tests and the demo.

The backdrop is a procedural background (the generator the scene synthesizer draws from,
detector.synth.compose) that pans 8 px a second, so frames differ as in footage; the demo logo is
alpha-blended at a fixed place from `logo_from_s` to `logo_to_s` (exclusive), and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detector.synth.compose import alpha_paste, procedural_background
from detector.synth.demo_logo import demo_logo


def write_demo_video(
    path: str | Path,
    seconds: float = 8.0,
    fps: float = 10.0,
    logo_from_s: float = 2.0,
    logo_to_s: float = 5.0,
    size: tuple[int, int] = (320, 240),
    logo_side: int = 100,
    seed: int = 3,
) -> Path:
    """Write an MJPEG AVI (or MP4 when the name ends in .mp4) with OpenCV's VideoWriter.

    Frame i (time i / fps) shows the logo when logo_from_s <= time < logo_to_s.

    Example:
        >>> write_demo_video("/tmp/clip.avi", seconds=1.0)  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(path), fourcc, float(fps), (w, h))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path.suffix} videos here")
    rng = np.random.default_rng(seed)
    wide = procedural_background(rng, h, w + int(seconds * 8) + 8)  # a backdrop that pans 8 px per second
    logo = cv2.resize(demo_logo(256), (logo_side, logo_side), interpolation=cv2.INTER_AREA)
    x, y = (w - logo_side) * 2 // 3, (h - logo_side) // 2
    try:
        for i in range(int(round(seconds * fps))):
            t = i / fps
            shift = int(t * 8)
            frame = np.ascontiguousarray(wide[:, shift : shift + w])
            if logo_from_s <= t < logo_to_s:
                alpha_paste(frame, logo, x, y)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
