"""Compositing primitives the generator draws with: backgrounds that are ours to use, and alpha blending.

Kept apart from the scene logic so the synthetic clip (detector.video.synth), the tests and the benchmarks
can draw on the same backgrounds and paste logos the same way, without rendering whole scenes.
"""

from __future__ import annotations

import cv2
import numpy as np

_SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
_SKIMAGE_GREY = ("camera", "coins", "moon", "grass", "gravel", "brick", "page", "text", "clock", "cell")


def builtin_backgrounds(rng: np.random.Generator, n_procedural: int = 12) -> list[np.ndarray]:
    """Photos and textures that ship with scikit-image, plus procedural ones: all offline, all ours to use.

    Grey images get a random tint so they are not a colour cue the model could learn; `rng` draws the
    tints and the procedural textures, so one seed gives the same list."""
    import skimage.data

    out: list[np.ndarray] = []
    for name in _SKIMAGE_PHOTOS + _SKIMAGE_GREY:
        img = getattr(skimage.data, name)()
        img = img[0] if isinstance(img, tuple) else img
        if img.ndim == 2:
            tint = rng.uniform(0.6, 1.0, size=3)
            img = np.clip(np.dstack([img] * 3) * tint, 0, 255)
        out.append(np.ascontiguousarray(img[..., :3], dtype=np.uint8))
    for _ in range(n_procedural):
        out.append(procedural_background(rng, 480, 640))
    return out


def procedural_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An h x w RGB uint8 image of smooth colour fields, stripes or blotches, lightly noised.

    Cheap variety beyond the few shipped photos: flat and periodic areas are where a classifier that
    only learned "any graphic" fails, so the negatives need them."""
    kind = rng.integers(3)
    if kind == 0:  # blurred colour noise
        small = rng.uniform(0, 255, size=(max(2, h // 64), max(2, w // 64), 3)).astype(np.float32)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # stripes
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ang, freq = rng.uniform(0, np.pi), rng.uniform(0.01, 0.08)
        wave = np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * freq)[..., None]
        c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        img = c1 + (c2 - c1) * (wave + 1) / 2
    else:  # blotches
        img = np.full((h, w, 3), rng.uniform(0, 255, 3), np.float32)
        for _ in range(rng.integers(5, 20)):
            center = (int(rng.integers(w)), int(rng.integers(h)))
            axes = (int(rng.integers(10, w // 3)), int(rng.integers(10, h // 3)))
            cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360, rng.uniform(0, 255, 3).tolist(), -1)
        img = cv2.GaussianBlur(img, (0, 0), 3)
    noise = rng.normal(0, rng.uniform(0, 12), size=img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def alpha_paste(dst: np.ndarray, patch: np.ndarray, x: int, y: int) -> np.ndarray:
    """Blend an RGBA patch onto dst (in place) at (x, y), clipped at the borders.

    Returns the pasted alpha as a float32 mask the size of dst: the scene generator derives each logo's
    box from it, so a box is exactly where the logo is visible."""
    h, w = dst.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
    mask = np.zeros((h, w), np.float32)
    if x1 <= x0 or y1 <= y0:
        return mask
    sub = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    a = sub[..., 3:4].astype(np.float32) / 255.0
    region = dst[y0:y1, x0:x1].astype(np.float32)
    dst[y0:y1, x0:x1] = np.clip(region * (1 - a) + sub[..., :3] * a, 0, 255).astype(np.uint8)
    mask[y0:y1, x0:x1] = a[..., 0]
    return mask
