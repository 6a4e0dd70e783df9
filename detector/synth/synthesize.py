"""`detect synth`: scenes with boxes plus a tile dataset cut from them, from nothing but logo files.

OUT/scenes/images/*.jpg, OUT/scenes/annotations.json (COCO), OUT/scenes/boxes.csv
OUT/tiles/<logo>/..., OUT/tiles/no-logo/...      (what `detect train` takes as it is)

The tiles are cut with the scanner's own tiling (detector.data.tilecut), so the model trains on the
windows a scan will show it.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.data.boxes import IMAGES, ImageRecord, write_box_dataset
from detector.data.tilecut import TileRules, write_scene_tiles
from detector.errors import DatasetError, ImageLoadError
from detector.images import is_image_path, load_image
from detector.options import OptionError, check_fields, option
from detector.synth.compose import builtin_backgrounds
from detector.synth.demo_logo import DEMO_LOGO_NAME, demo_logo
from detector.synth.scenes import SceneConfig, render_scene, scene_rng, trim_alpha

__all__ = ["SynthConfig", "SynthResult", "load_backgrounds", "load_distractors", "load_logos", "synthesize"]

#: Backgrounds are shrunk to this longest side: scenes are smaller, and 40 MP photos would cost memory.
MAX_BACKGROUND_SIDE = 1280
#: Offsets of the random streams that are not one scene's (scene i uses scene_rng(seed, i)).
_BACKGROUND_STREAM = 1 << 20
_TILE_STREAM = 1 << 30


def _path(name: str, value: Any) -> Path:
    if isinstance(value, str | os.PathLike) and str(value):
        return Path(value)
    raise OptionError(name, f"must be a path, got {value!r:.60}")


def _paths(name: str, value: Any) -> list[Path]:
    if isinstance(value, str | bytes | os.PathLike) or not isinstance(value, list | tuple):
        raise OptionError(name, f"must be a list of paths, got {value!r:.60}")
    return [_path(name, v) for v in value]


@dataclass(frozen=True)
class SynthConfig:
    """What `detect synth` makes and from what; how each scene looks is `scene` (a SceneConfig).

    Each field but `scene` is declared once as an option (detector.options): the CLI's flags come from
    these declarations (`logos` is `--logo`, repeatable), and the constructor checks every value, so a
    bad one raises OptionError naming the field. The output depends on the inputs, `seed` and `scene`
    only, never on `workers`.

    Example:
        >>> SynthConfig(out="synth-out", scenes=10, tiles=False).tile_rules is None
        True
        >>> SynthConfig(out="synth-out", scenes=0)
        Traceback (most recent call last):
        ...
        detector.options.OptionError: scenes must be a whole number in [1, 10000000], got 0
    """

    out: Path = option(help="Folder for scenes/ and tiles/.", check=_path)
    logos: list[Path] = option(
        help="A logo graphic (PNG with alpha); repeat for several. Default: the demo logo.",
        factory=list,
        check=_paths,
        flag="--logo",
    )
    backgrounds: Path | None = option(None, "A folder of photos (default: built-in photos and textures).", check=_path)
    distractors: Path | None = option(None, "A folder of other logos, drawn as negatives.", check=_path)
    scenes: int = option(200, "How many scenes.", range=(1, 10_000_000))
    seed: int = option(0, "", range=(0, 2**63 - 1))
    tile_size: int = option(128, "Tile side for the tile dataset (the model's input size).", range=(16, 4096))
    tiles: bool = option(True, "Also cut the tile dataset.")
    workers: int = option(
        2, "Threads rendering scenes (the output is the same for any number).", range=(1, 64), cli=False
    )
    scene: SceneConfig = field(default_factory=SceneConfig)

    def __post_init__(self) -> None:
        check_fields(self)
        if not isinstance(self.scene, SceneConfig):
            raise OptionError("scene", f"must be a SceneConfig, got {self.scene!r:.60}")

    @property
    def tile_rules(self) -> TileRules | None:
        """How tiles are cut (the model's input size; the rest as `detect train` expects), or None."""
        return TileRules(size=self.tile_size) if self.tiles else None


@dataclass
class SynthResult:
    """Where a run wrote its scenes and tiles, and how much: tile counts per class, rendering seconds."""

    scenes_dir: Path
    tiles_dir: Path | None
    scenes: int
    boxes: int
    tiles: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class _Inputs:
    """What every scene draws from, loaded once before rendering."""

    logos: dict[str, np.ndarray]
    backgrounds: list[np.ndarray]
    distractors: list[np.ndarray]


def load_logo(path: str | Path) -> np.ndarray:
    """An RGBA logo graphic, transparent margins trimmed. A file without alpha is used as an opaque block."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.seek(0)
            rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DatasetError(f"logos: cannot read the logo {path} ({e})") from None
    return trim_alpha(rgba)


def logo_name(path: str | Path) -> str:
    """The class name of a logo file: its stem, lower case, spaces as dashes."""
    return Path(path).stem.lower().replace(" ", "-")


def load_logos(paths: list[Path]) -> dict[str, np.ndarray]:
    """Logos by class name (the file names); the demo logo when there are none."""
    if not paths:
        return {DEMO_LOGO_NAME: trim_alpha(demo_logo(256))}
    logos = {logo_name(p): load_logo(p) for p in paths}
    if len(logos) != len(paths):
        raise DatasetError("logos: two files share a name; rename one (the file name is the class name)")
    return logos


def load_backgrounds(folder: str | Path | None, rng: np.random.Generator, limit: int = 400) -> list[np.ndarray]:
    """Photos from a folder (shrunk to at most 1280 px; at most `limit`, drawn with `rng`), or the
    built-in ones when no folder is given. Unreadable photos are skipped: one bad file in a big folder
    should not stop a run."""
    if folder is None:
        return builtin_backgrounds(rng)
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_path(p))
    if not files:
        raise DatasetError(f"backgrounds: no images found in {folder}")
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
        raise DatasetError(f"backgrounds: none of the images in {folder} could be read")
    return out


def load_distractors(folder: str | Path | None, limit: int = 300, seed: int = 0) -> list[np.ndarray]:
    """Other logos (RGBA) to draw as negatives: at most `limit`, drawn with `seed`; unreadable ones skipped."""
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


def _load_inputs(cfg: SynthConfig) -> _Inputs:
    """Logos, backgrounds and distractors, in this order (the backgrounds' random stream depends on it)."""
    logos = load_logos(cfg.logos)
    backgrounds = load_backgrounds(cfg.backgrounds, np.random.default_rng([cfg.seed, _BACKGROUND_STREAM]))
    return _Inputs(logos, backgrounds, load_distractors(cfg.distractors, seed=cfg.seed))


def _write_scene(cfg: SynthConfig, inputs: _Inputs, i: int) -> tuple[ImageRecord, dict[str, int]]:
    """Render scene i, write it, cut its tiles; its record and tile counts per class."""
    scenes_dir = cfg.out / "scenes"
    scene = render_scene(inputs.logos, inputs.backgrounds, cfg.scene, scene_rng(cfg.seed, i), inputs.distractors)
    name = f"s{cfg.seed}-{i:06d}.jpg"
    bgr = cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(scenes_dir / IMAGES / name), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    counts: dict[str, int] = {}
    rules = cfg.tile_rules
    if rules is not None:
        tile_rng = scene_rng(cfg.seed, i + _TILE_STREAM)
        counts = write_scene_tiles(cfg.out / "tiles", name, scene.image, scene.boxes, rules, tile_rng)
    return ImageRecord(name, cfg.scene.width, cfg.scene.height, scene.boxes), counts


def synthesize(cfg: SynthConfig, progress: Callable[[int], None] | None = None) -> SynthResult:
    """Render `cfg.scenes` scenes into OUT/scenes (boxes as COCO and CSV) and, when `cfg.tiles`, cut the
    tile dataset OUT/tiles from them; `progress(n)` is called after each of the n scenes written.

    A brand with nothing but its logo file gets labelled training data this way. Scene i depends only
    on (seed, i), so the same config gives the same bytes with any number of workers.

    Example:
        >>> import tempfile
        >>> cfg = SynthConfig(out=tempfile.mkdtemp(), scenes=4, seed=1, scene=SceneConfig(width=320, height=240))
        >>> res = synthesize(cfg)
        >>> res.scenes, res.boxes, res.tiles_dir.name, sorted(res.tiles)
        (4, 3, 'tiles', ['demo-logo', 'no-logo'])
    """
    inputs = _load_inputs(cfg)
    scenes_dir = cfg.out / "scenes"
    t0 = time.monotonic()  # rendering speed: inputs are loaded once, before
    (scenes_dir / IMAGES).mkdir(parents=True, exist_ok=True)
    records: list[ImageRecord] = []
    totals: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        scenes = pool.map(functools.partial(_write_scene, cfg, inputs), range(cfg.scenes))
        for n, (rec, counts) in enumerate(scenes, start=1):
            records.append(rec)
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
            if progress:
                progress(n)
    write_box_dataset(scenes_dir, records, sorted(inputs.logos))
    return SynthResult(
        scenes_dir,
        cfg.out / "tiles" if cfg.tiles else None,
        len(records),
        sum(len(r.boxes) for r in records),
        totals,
        time.monotonic() - t0,
    )
