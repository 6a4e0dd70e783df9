"""`detect synth`: scenes with boxes plus a tile dataset cut from them, from nothing but logo files.

OUT/scenes/images/*.jpg, OUT/scenes/annotations.json (COCO), OUT/scenes/boxes.csv
OUT/tiles/<logo>/..., OUT/tiles/no-logo/...      (what `detect train` takes as it is)
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.data.boxes import IMAGES, ImageRecord, write_box_dataset
from detector.data.tilecut import TileRules, write_scene_tiles
from detector.errors import DatasetError, ImageLoadError
from detector.images import is_image_path, load_image
from detector.synth.demo_logo import DEMO_LOGO_NAME, demo_logo
from detector.synth.legacy import builtin_backgrounds
from detector.synth.scenes import SceneConfig, render_scene, scene_rng, trim_alpha

MAX_BACKGROUND_SIDE = 1280
DEFAULT_SCENE = SceneConfig()
DEFAULT_RULES = TileRules()


@dataclass
class SynthResult:
    scenes_dir: Path
    tiles_dir: Path | None
    scenes: int
    boxes: int
    tiles: dict[str, int]
    seconds: float


def load_logo(path: str | Path) -> np.ndarray:
    """An RGBA logo graphic, transparent margins trimmed. A file without alpha is used as an opaque block."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.seek(0)
            rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DatasetError(f"--logo {path}: cannot read the logo ({e})") from None
    return trim_alpha(rgba)


def logo_name(path: str | Path) -> str:
    return Path(path).stem.lower().replace(" ", "-")


def load_logos(paths: list[str | Path]) -> dict[str, np.ndarray]:
    if not paths:
        return {DEMO_LOGO_NAME: trim_alpha(demo_logo(256))}
    logos = {logo_name(p): load_logo(p) for p in paths}
    if len(logos) != len(paths):
        raise DatasetError("two --logo files share a name; rename one (the file name is the class name)")
    return logos


def load_backgrounds(folder: str | Path | None, rng: np.random.Generator, limit: int = 400) -> list[np.ndarray]:
    """Photos from a folder (shrunk to at most 1280 px), or the built-in ones when no folder is given."""
    if folder is None:
        return builtin_backgrounds(rng)
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_path(p))
    if not files:
        raise DatasetError(f"--backgrounds {folder}: no images found")
    if len(files) > limit:
        files = [files[i] for i in sorted(rng.choice(len(files), limit, replace=False))]
    out = []
    for f in files:
        try:
            px = load_image(f, draft_size=(MAX_BACKGROUND_SIDE, MAX_BACKGROUND_SIDE)).pixels
        except ImageLoadError:
            continue
        k = MAX_BACKGROUND_SIDE / max(px.shape[:2])
        if k < 1:
            px = cv2.resize(px, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        out.append(px)
    if not out:
        raise DatasetError(f"--backgrounds {folder}: none of the images could be read")
    return out


def load_distractors(folder: str | Path | None, limit: int = 300, seed: int = 0) -> list[np.ndarray]:
    if folder is None:
        return []
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_path(p))
    if len(files) > limit:
        rng = np.random.default_rng(seed)
        files = [files[i] for i in sorted(rng.choice(len(files), limit, replace=False))]
    out = []
    for f in files:
        try:
            out.append(load_logo(f))
        except DatasetError:
            continue
    return out


def synthesize(
    out: str | Path,
    logo_paths: list[str | Path] | None = None,
    backgrounds: str | Path | None = None,
    distractors: str | Path | None = None,
    scenes: int = 200,
    seed: int = 0,
    config: SceneConfig = DEFAULT_SCENE,
    rules: TileRules | None = DEFAULT_RULES,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> SynthResult:
    """Render `scenes` scenes and, unless rules is None, cut the tile dataset from them."""
    import time

    out = Path(out)
    logos = load_logos(list(logo_paths or []))
    rng = np.random.default_rng([seed, 1 << 20])
    bgs = load_backgrounds(backgrounds, rng)
    others = load_distractors(distractors, seed=seed)
    scenes_dir, tiles_dir = out / "scenes", out / "tiles"
    t0 = time.monotonic()  # rendering speed: inputs are loaded once, before
    (scenes_dir / IMAGES).mkdir(parents=True, exist_ok=True)

    def one(i: int) -> ImageRecord:
        r = scene_rng(seed, i)
        scene = render_scene(logos, bgs, config, r, others)
        name = f"s{seed}-{i:06d}.jpg"
        cv2.imwrite(
            str(scenes_dir / IMAGES / name),
            cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 92],
        )
        counts = {}
        if rules is not None:
            counts = write_scene_tiles(tiles_dir, name, scene.image, scene.boxes, rules, scene_rng(seed, i + (1 << 30)))
        return ImageRecord(name, config.width, config.height, scene.boxes), counts

    records: list[ImageRecord] = []
    totals: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for n, (rec, counts) in enumerate(pool.map(one, range(scenes)), start=1):
            records.append(rec)
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
            if progress:
                progress(n)
    write_box_dataset(scenes_dir, records, sorted(logos))
    return SynthResult(
        scenes_dir,
        tiles_dir if rules else None,
        len(records),
        sum(len(r.boxes) for r in records),
        totals,
        time.monotonic() - t0,
    )
