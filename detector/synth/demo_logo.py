"""The project's own mark, drawn in code: the demo brand every offline example uses.

It is ours (no trademark), drawn at any size with OpenCV, with an alpha channel so it composites like a
real logo graphic. A teal disc, an orange ring and a white lens-and-handle glyph: distinct at 20 px.
"""

from __future__ import annotations

import cv2
import numpy as np

DEMO_LOGO_NAME = "demo-logo"


def demo_logo(size: int = 256) -> np.ndarray:
    """RGBA uint8 array (size x size x 4), transparent outside the badge."""
    s = 4 * size  # draw large, then shrink: anti-aliased edges at every size
    rgb = np.zeros((s, s, 3), np.uint8)
    alpha = np.zeros((s, s), np.uint8)
    c, r = s // 2, int(s * 0.48)
    cv2.circle(alpha, (c, c), r, 255, -1, cv2.LINE_AA)
    cv2.circle(rgb, (c, c), r, (245, 130, 32), -1, cv2.LINE_AA)  # orange ring
    cv2.circle(rgb, (c, c), int(r * 0.84), (0, 120, 128), -1, cv2.LINE_AA)  # teal disc
    lens_c, lens_r = (int(c - r * 0.12), int(c - r * 0.12)), int(r * 0.36)
    cv2.circle(rgb, lens_c, lens_r, (255, 255, 255), int(r * 0.12), cv2.LINE_AA)
    h0 = (int(lens_c[0] + lens_r * 0.75), int(lens_c[1] + lens_r * 0.75))
    h1 = (int(c + r * 0.5), int(c + r * 0.5))
    cv2.line(rgb, h0, h1, (255, 255, 255), int(r * 0.16), cv2.LINE_AA)
    cv2.circle(rgb, lens_c, int(lens_r * 0.35), (245, 130, 32), -1, cv2.LINE_AA)  # orange "pupil"
    out = np.dstack([rgb, alpha])
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
