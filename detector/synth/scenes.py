"""Synthetic scenes: logos composited into photos the way they appear in the wild, with exact boxes.

Each logo is scaled (3% to 70% of the short side, log-uniform), tilted in perspective, rotated, gently
warped (print on fabric), colour-shifted, alpha-blended at a random opacity and sometimes partly
occluded; other logos and random text are drawn as distractors (negatives); the whole photo is then
blurred, noised and JPEG re-compressed. The box of each logo is the box of its *visible* alpha after
all of that, so it is right by construction.

One scene depends only on (seed, index): the same seed gives the same bytes, and scenes can be made
in any order or in parallel.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field

import cv2
import numpy as np

from detector.geometry import Box
from detector.options import OptionError, check_fields, check_pair, numbers_from_text, option
from detector.synth.compose import alpha_paste

#: A pixel belongs to a logo where its visible alpha is at least this.
VISIBLE_ALPHA = 0.25

_FRACTION = (0.0, 1.0)
_LOGO_FRACTION = (0.001, 1.0)  # of the short side; above 0, as sizes are drawn log-uniform
_SCENE_SIDE = (16, 16384)


@dataclass(frozen=True)
class SceneConfig:
    """How one scene looks: its size, how many logos, how each is transformed and how the photo degrades.

    Every field is an option of `detect synth` (its flag is `--the-name` unless `flag` says otherwise;
    `cli=False` ones only the library sets) and is checked when the config is made, so a bad value fails
    here with its name, not deep inside OpenCV.

    Example:
        >>> SceneConfig(width=320, height=240, text_distractors=(0, 2)).max_logos
        3
        >>> SceneConfig(min_logo=0.5, max_logo=0.2)
        Traceback (most recent call last):
        ...
        detector.options.OptionError: min_logo must be at most max_logo (0.2), got 0.5
    """

    width: int = option(640, "", range=_SCENE_SIDE)
    height: int = option(480, "", range=_SCENE_SIDE)
    min_logo: float = option(0.03, "Smallest logo, fraction of the short side.", range=_LOGO_FRACTION)
    max_logo: float = option(0.7, "Largest logo, fraction of the short side.", range=_LOGO_FRACTION)
    max_logos: int = option(3, "Most logos in one scene.", range=(1, 100))
    max_rotation: float = option(30.0, "Degrees.", range=(0.0, 180.0))
    perspective: float = option(0.12, "Corner jitter, fraction of the logo side.", range=_FRACTION)
    warp: float = option(0.025, "Non-rigid warp amplitude, fraction of the logo side.", range=_FRACTION)
    occlusion_probability: float = option(
        0.25, "Probability that a logo is partly covered.", range=_FRACTION, flag="--occlusion"
    )
    blur_probability: float = option(0.3, "Probability of blur.", range=_FRACTION, flag="--blur")
    brightness: float = option(0.25, "Logo brightness change, +- fraction.", range=_FRACTION)
    contrast: float = option(0.25, "Logo contrast change, +- fraction.", range=_FRACTION)
    hue: float = option(6.0, "Logo hue shift, +- OpenCV hue units (0..180).", range=(0.0, 90.0))
    max_noise: float = option(8.0, "Largest noise sigma, grey levels.", range=(0.0, 128.0), flag="--noise")
    jpeg_quality: tuple[int, int] = option(
        (35, 95),
        "JPEG re-compression quality range, e.g. 35,95.",
        parse=numbers_from_text(2, int),
        check=check_pair(1, 100),
    )
    text_distractors: tuple[int, int] = option(
        (0, 4),
        "Random text distractors per scene, range, e.g. 0,4.",
        parse=numbers_from_text(2, int),
        check=check_pair(0, 100),
        flag="--text",
    )
    empty_probability: float = option(
        0.25, "Share of scenes with no target logo at all (negatives).", range=_FRACTION, cli=False
    )
    min_opacity: float = option(0.75, "Least opacity a logo is blended at.", range=_FRACTION, cli=False)
    max_occlusion: float = option(0.3, "Largest share of a logo's box an occluder covers.", range=_FRACTION, cli=False)
    logo_distractors: tuple[int, int] = option(
        (0, 2),
        "Distractor logos (other marks) per scene, range, e.g. 0,2; drawn only when there are some.",
        parse=numbers_from_text(2, int),
        check=check_pair(0, 100),
        cli=False,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.min_logo > self.max_logo:
            raise OptionError("min_logo", f"must be at most max_logo ({self.max_logo:g}), got {self.min_logo:g}")


@dataclass
class Scene:
    """One rendered scene: the photo and the box of every logo that stayed visible in it."""

    image: np.ndarray  # HxWx3 uint8 RGB
    boxes: list[Box]
    masks: list[np.ndarray] = field(default_factory=list)  # visible alpha per box, float32 HxW


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of scene `index` of a run: scenes depend on nothing else, so any order works."""
    return np.random.default_rng([seed, index])


def trim_alpha(logo: np.ndarray) -> np.ndarray:
    """Cut transparent margins so the logo's extent is its visible pixels."""
    ys, xs = np.nonzero(logo[..., 3] > 8)
    if len(ys) == 0:
        return logo
    return logo[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def background_crop(bg: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A crop of random place and size with the scene's aspect, resized to the scene."""
    h, w = bg.shape[:2]
    aspect = width / height
    max_w = min(w, h * aspect)
    cw = max(16.0, max_w * rng.uniform(0.45, 1.0))
    ch = cw / aspect
    x = rng.uniform(0, max(0.0, w - cw))
    y = rng.uniform(0, max(0.0, h - ch))
    crop = bg[int(y) : int(y + ch), int(x) : int(x + cw)]
    interp = cv2.INTER_AREA if cw > width else cv2.INTER_LINEAR
    out = cv2.resize(crop, (width, height), interpolation=interp)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def _smooth_field(rng: np.random.Generator, h: int, w: int, amplitude: float) -> np.ndarray:
    """A displacement field smooth over the whole patch (4x4 noise, upsampled): bends, never tears."""
    small = rng.normal(0, 1, (4, 4)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * amplitude


def render_logo(logo: np.ndarray, side: int, cfg: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """An RGBA patch of the logo transformed as in a photo; its longest side is about `side` pixels.

    Perspective, rotation, warp, colour and opacity change in the ways print and cameras change a logo,
    so the model learns the mark rather than one rendering of it."""
    h, w = logo.shape[:2]
    k = side / max(h, w)
    lw, lh = max(2, round(w * k)), max(2, round(h * k))
    small = cv2.resize(logo, (lw, lh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    pad = int(math.ceil(0.45 * max(lw, lh))) + 2
    canvas = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0, 0))
    ch, cw = canvas.shape[:2]
    # Perspective and rotation in one homography.
    src = np.float32([[pad, pad], [pad + lw, pad], [pad + lw, pad + lh], [pad, pad + lh]])
    jitter = rng.uniform(-cfg.perspective, cfg.perspective, (4, 2)) * np.float32([lw, lh])
    dst = src + jitter.astype(np.float32)
    rot = cv2.getRotationMatrix2D((cw / 2, ch / 2), float(rng.uniform(-cfg.max_rotation, cfg.max_rotation)), 1.0)
    dst = (np.hstack([dst, np.ones((4, 1), np.float32)]) @ rot.T).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(canvas, m, (cw, ch), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
    if cfg.warp > 0 and side >= 24:  # gentle non-rigid warp, as print on fabric
        amp = cfg.warp * side
        gx, gy = np.meshgrid(np.arange(cw, dtype=np.float32), np.arange(ch, dtype=np.float32))
        mx = gx + _smooth_field(rng, ch, cw, amp)
        my = gy + _smooth_field(rng, ch, cw, amp)
        out = cv2.remap(out, mx, my, cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
    rgb = np.ascontiguousarray(out[..., :3])
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-cfg.hue, cfg.hue)) % 180
    hsv[..., 1] *= rng.uniform(0.75, 1.15)
    rgb = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    rgb = (rgb - 128) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + 128
    rgb = rgb * rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    out[..., :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    out[..., 3] = (out[..., 3].astype(np.float32) * rng.uniform(cfg.min_opacity, 1.0)).astype(np.uint8)
    ys, xs = np.nonzero(out[..., 3] > 0)
    if len(ys) == 0:
        return out
    return out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _draw_text(img: np.ndarray, rng: np.random.Generator) -> None:
    """One random word in a random font, size and colour: text is the commonest distractor in photos."""
    h, w = img.shape[:2]
    alphabet = string.ascii_letters + string.digits + "  &-"
    text = "".join(rng.choice(list(alphabet), int(rng.integers(2, 12)))).strip() or "SALE"
    scale = rng.uniform(0.4, 2.5) * min(h, w) / 480
    color = tuple(int(v) for v in rng.integers(0, 256, 3))
    org = (int(rng.integers(0, max(1, w - 40))), int(rng.integers(20, h)))
    cv2.putText(img, text, org, int(rng.integers(0, 8)), scale, color, max(1, int(scale * 2.2)), cv2.LINE_AA)


def _place(
    side_w: int, side_h: int, width: int, height: int, taken: list[tuple[int, int, int, int]], rng: np.random.Generator
) -> tuple[int, int] | None:
    """A top-left corner where the patch overlaps no taken box (30 tries), or None: logos never overlap,
    so every box has one label."""
    for _ in range(30):
        x = int(rng.integers(0, max(1, width - side_w + 1)))
        y = int(rng.integers(0, max(1, height - side_h + 1)))
        if all(x + side_w <= a or a2 <= x or y + side_h <= b or b2 <= y for a, b, a2, b2 in taken):
            return x, y
    return None


def render_scene(
    logos: dict[str, np.ndarray],
    backgrounds: list[np.ndarray],
    cfg: SceneConfig,
    rng: np.random.Generator,
    distractor_logos: list[np.ndarray] | None = None,
    with_masks: bool = False,
) -> Scene:
    """One scene: a background crop, distractors, 0 to `cfg.max_logos` logos (RGBA, by class name),
    occluders, then blur, noise and JPEG; boxes from the visible alpha. `with_masks` keeps the masks.

    The steps draw from `rng` in a fixed order, so (seed, index) alone decides the scene.
    """
    img = background_crop(backgrounds[int(rng.integers(len(backgrounds)))], cfg.width, cfg.height, rng)
    _draw_distractors(img, distractor_logos or [], cfg, rng)
    labels, masks = _paste_logos(img, logos, cfg, rng)
    for j in range(len(masks)):
        if rng.random() < cfg.occlusion_probability:
            _occlude(img, masks, j, cfg, rng)
    img = _degrade(img, cfg, rng)
    boxes, kept = _visible_boxes(labels, masks)
    return Scene(img, boxes, kept if with_masks else [])


def _draw_distractors(img: np.ndarray, others: list[np.ndarray], cfg: SceneConfig, rng: np.random.Generator) -> None:
    """Random text, then other logos: marks a photo carries that must not count as the target logo."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(cfg.text_distractors[0], cfg.text_distractors[1] + 1))):
        _draw_text(img, rng)
    if not others:
        return
    for _ in range(int(rng.integers(cfg.logo_distractors[0], cfg.logo_distractors[1] + 1))):
        other = others[int(rng.integers(len(others)))]
        side = int(min(w, h) * math.exp(rng.uniform(math.log(cfg.min_logo * 2), math.log(cfg.max_logo * 0.7))))
        patch = render_logo(other, max(side, 8), cfg, rng)
        alpha_paste(
            img, patch, int(rng.integers(-side // 4, w - side // 2)), int(rng.integers(-side // 4, h - side // 2))
        )


def _paste_logos(
    img: np.ndarray, logos: dict[str, np.ndarray], cfg: SceneConfig, rng: np.random.Generator
) -> tuple[list[str], list[np.ndarray]]:
    """Paste the scene's target logos where none overlaps another; their labels and pasted alpha masks."""
    h, w = img.shape[:2]
    names = sorted(logos)
    n = 0 if rng.random() < cfg.empty_probability else int(rng.integers(1, cfg.max_logos + 1))
    taken: list[tuple[int, int, int, int]] = []
    labels: list[str] = []
    masks: list[np.ndarray] = []
    short = min(w, h)
    for i in range(n):
        # The first logo spans the whole size range; later ones stay smaller, so several fit.
        hi = cfg.max_logo if i == 0 else min(cfg.max_logo, 0.35)
        side = int(short * math.exp(rng.uniform(math.log(cfg.min_logo), math.log(hi))))
        name = names[int(rng.integers(len(names)))]
        patch = render_logo(logos[name], max(side, 6), cfg, rng)
        ph, pw = patch.shape[:2]
        if pw > w or ph > h:
            continue
        spot = _place(pw, ph, w, h, taken, rng)
        if spot is None:
            continue
        x, y = spot
        taken.append((x - 2, y - 2, x + pw + 2, y + ph + 2))
        masks.append(alpha_paste(img, patch, x, y))
        labels.append(name)
    return labels, masks


def _degrade(img: np.ndarray, cfg: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """The camera and the web: sometimes blur, always some noise, then one JPEG round trip."""
    if rng.random() < cfg.blur_probability:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.4))
    noise = rng.normal(0, rng.uniform(0, cfg.max_noise), img.shape).astype(np.float32)
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _visible_boxes(labels: list[str], masks: list[np.ndarray]) -> tuple[list[Box], list[np.ndarray]]:
    """The box of each logo's visible alpha, and its mask; a logo with under 9 visible pixels is dropped
    (occluded or faded away), so no box marks something a model could not see."""
    boxes: list[Box] = []
    kept: list[np.ndarray] = []
    for name, mask in zip(labels, masks, strict=True):
        ys, xs = np.nonzero(mask >= VISIBLE_ALPHA)
        if len(ys) < 9:
            continue
        boxes.append(Box(name, float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)))
        kept.append(mask)
    return boxes, kept


def _occlude(img: np.ndarray, masks: list[np.ndarray], j: int, cfg: SceneConfig, rng: np.random.Generator) -> None:
    """Cover part of logo j with an opaque shape (a hand, a pole, a sticker) and update every mask."""
    ys, xs = np.nonzero(masks[j] >= VISIBLE_ALPHA)
    if len(ys) < 16:
        return
    x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    bw, bh = x2 - x1, y2 - y1
    frac = rng.uniform(0.1, cfg.max_occlusion)
    if rng.random() < 0.5:  # a band from one side
        ow, oh = (int(bw * frac), bh) if rng.random() < 0.5 else (bw, int(bh * frac))
    else:  # a blob
        ow = oh = int(math.sqrt(frac * bw * bh))
    ox = int(rng.choice([x1 - ow // 3, x2 - ow + ow // 3])) if ow < bw else x1
    oy = int(rng.integers(y1 - oh // 3, max(y1 - oh // 3 + 1, y2 - oh + oh // 3)))
    occ = np.zeros(img.shape[:2], np.uint8)
    if rng.random() < 0.5:
        cv2.rectangle(occ, (ox, oy), (ox + ow, oy + oh), 255, -1)
    else:
        cv2.ellipse(occ, (ox + ow // 2, oy + oh // 2), (max(1, ow // 2), max(1, oh // 2)), 0, 0, 360, 255, -1)
    color = rng.integers(0, 256, 3).astype(np.uint8)
    img[occ > 0] = color
    for m in masks:
        m[occ > 0] = 0.0
