"""Synthetic training tiles: a logo graphic composited into photos and textures, with hard negatives.

A brand that has nothing but its logo file still gets a labelled dataset: positives are background crops
with the logo pasted at a random size, angle, colour shift and blur; negatives are crops of the same
backgrounds carrying other marks (random shapes and text), so "any graphic" is not what the model learns.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.synth.demo_logo import DEMO_LOGO_NAME, demo_logo

_SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
_SKIMAGE_GREY = ("camera", "coins", "moon", "grass", "gravel", "brick", "page", "text", "clock", "cell")


def builtin_backgrounds(rng: np.random.Generator, n_procedural: int = 12) -> list[np.ndarray]:
    """Photos and textures that ship with scikit-image, plus procedural ones: all offline, all ours to use."""
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
    """Smooth colour fields, stripes or blotches: cheap variety for the negatives."""
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


def random_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A square crop of random size and place, resized to size x size."""
    h, w = img.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(h, w))
    side = max(side, 8)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return cv2.resize(img[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)


def transform_logo(logo: np.ndarray, side: int, rng: np.random.Generator, max_angle: float = 25.0) -> np.ndarray:
    """Scale, rotate and colour-shift an RGBA logo into a side x side RGBA patch."""
    patch = cv2.resize(logo, (side, side), interpolation=cv2.INTER_AREA if side < logo.shape[0] else cv2.INTER_LINEAR)
    m = cv2.getRotationMatrix2D((side / 2, side / 2), float(rng.uniform(-max_angle, max_angle)), 1.0)
    patch = cv2.warpAffine(patch, m, (side, side), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
    rgb = patch[..., :3].astype(np.float32)
    rgb = rgb * rng.uniform(0.7, 1.2) + rng.uniform(-25, 25)  # contrast, brightness
    patch[..., :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    return patch


def alpha_paste(dst: np.ndarray, patch: np.ndarray, x: int, y: int) -> np.ndarray:
    """Blend an RGBA patch onto dst at (x, y), clipped at the borders; returns the pasted alpha mask."""
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


def draw_distractors(img: np.ndarray, rng: np.random.Generator, n: int | None = None) -> None:
    """Random text and shapes: other marks a photo carries, which must not count as the logo."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 4)) if n is None else n):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(4)
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(max(3, w // 12), max(4, w // 3)))
        if kind == 0:
            text = "".join(rng.choice(list(string.ascii_letters + string.digits), int(rng.integers(2, 8))))
            scale = rng.uniform(0.3, 1.6) * w / 160
            cv2.putText(
                img,
                text,
                (int(rng.integers(0, max(1, w // 2))), cy),
                int(rng.integers(0, 8)),
                scale,
                color,
                max(1, int(scale * 2)),
                cv2.LINE_AA,
            )
        elif kind == 1:
            cv2.circle(img, (cx, cy), r, color, int(rng.choice([-1, 2, 5])), cv2.LINE_AA)
        elif kind == 2:
            cv2.rectangle(img, (cx - r, cy - r // 2), (cx + r, cy + r // 2), color, int(rng.choice([-1, 3])))
        else:
            pts = rng.integers(-r, r, size=(int(rng.integers(3, 7)), 2)) + [cx, cy]
            cv2.fillPoly(img, [pts.astype(np.int32)], color, cv2.LINE_AA)


@dataclass(frozen=True)
class TileSpec:
    size: int = 128
    min_fraction: float = 0.3  # logo side as a fraction of the tile side
    max_fraction: float = 0.9
    blur_probability: float = 0.3


def positive_tile(logo: np.ndarray, bg: np.ndarray, spec: TileSpec, rng: np.random.Generator) -> np.ndarray:
    tile = random_crop(bg, spec.size, rng)
    if rng.random() < 0.5:
        draw_distractors(tile, rng)
    side = int(spec.size * rng.uniform(spec.min_fraction, spec.max_fraction))
    patch = transform_logo(logo, side, rng)
    x = int(rng.integers(-side // 8, spec.size - side + side // 8 + 1))
    y = int(rng.integers(-side // 8, spec.size - side + side // 8 + 1))
    alpha_paste(tile, patch, x, y)
    return _finish(tile, spec, rng)


def negative_tile(
    bg: np.ndarray, spec: TileSpec, rng: np.random.Generator, distractor_logos: Sequence[np.ndarray] = ()
) -> np.ndarray:
    tile = random_crop(bg, spec.size, rng)
    if rng.random() < 0.8:
        draw_distractors(tile, rng)
    if distractor_logos and rng.random() < 0.5:
        other = distractor_logos[int(rng.integers(len(distractor_logos)))]
        side = int(spec.size * rng.uniform(spec.min_fraction, spec.max_fraction))
        alpha_paste(
            tile,
            transform_logo(other, side, rng),
            int(rng.integers(0, spec.size - side + 1)),
            int(rng.integers(0, spec.size - side + 1)),
        )
    return _finish(tile, spec, rng)


def _finish(tile: np.ndarray, spec: TileSpec, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < spec.blur_probability:
        tile = cv2.GaussianBlur(tile, (0, 0), rng.uniform(0.5, 1.5))
    noise = rng.normal(0, rng.uniform(0, 6), tile.shape)
    return np.clip(tile + noise, 0, 255).astype(np.uint8)


def write_tile_dataset(
    out: str | Path,
    logos: dict[str, np.ndarray] | None = None,
    per_class: int = 200,
    spec: TileSpec = TileSpec(),
    seed: int = 0,
    negative_class: str = "no-logo",
    backgrounds: list[np.ndarray] | None = None,
    negatives_per_class: float = 1.0,
) -> Path:
    """Write a class-folder dataset (JPEG tiles) that `detect train` takes as it is."""
    rng = np.random.default_rng(seed)
    logos = logos or {DEMO_LOGO_NAME: demo_logo()}
    bgs = backgrounds if backgrounds is not None else builtin_backgrounds(rng)
    out = Path(out)
    for name, logo in logos.items():
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            tile = positive_tile(logo, bgs[int(rng.integers(len(bgs)))], spec, rng)
            cv2.imwrite(str(d / f"{name}-s{seed}-{i:05d}.jpg"), cv2.cvtColor(tile, cv2.COLOR_RGB2BGR))
    d = out / negative_class
    d.mkdir(parents=True, exist_ok=True)
    for i in range(int(per_class * len(logos) * negatives_per_class)):
        tile = negative_tile(bgs[int(rng.integers(len(bgs)))], spec, rng)
        cv2.imwrite(str(d / f"neg-s{seed}-{i:05d}.jpg"), cv2.cvtColor(tile, cv2.COLOR_RGB2BGR))
    return out
