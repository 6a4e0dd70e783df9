"""Synthetic scenes: boxes match the rendered logos, seeds reproduce, tiles are labelled truthfully."""

from __future__ import annotations

import doctest
import hashlib
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from detector.data.boxes import read_box_dataset
from detector.data.tilecut import TileRules, scene_tiles
from detector.options import OptionError, declared
from detector.synth import (
    VISIBLE_ALPHA,
    SceneConfig,
    SynthConfig,
    builtin_backgrounds,
    demo_logo,
    render_scene,
    scene_rng,
    synthesize,
    trim_alpha,
)
from tests.helpers import run_cli


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _scenes(n: int, seed: int = 0, **cfg: object) -> list:
    bgs = builtin_backgrounds(np.random.default_rng(0), n_procedural=3)
    logos = {"demo-logo": trim_alpha(demo_logo(200))}
    other = [trim_alpha(np.dstack([np.full((60, 90, 3), 200, np.uint8), np.full((60, 90), 255, np.uint8)]))]
    return [render_scene(logos, bgs, SceneConfig(**cfg), scene_rng(seed, i), other, with_masks=True) for i in range(n)]


def test_every_box_encloses_the_visible_logo_pixels() -> None:
    scenes = _scenes(40, occlusion_probability=0.6)
    n_boxes = 0
    for s in scenes:
        assert len(s.boxes) == len(s.masks)
        for box, mask in zip(s.boxes, s.masks, strict=True):
            ys, xs = np.nonzero(mask >= VISIBLE_ALPHA)
            from_mask = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert _iou((box.x1, box.y1, box.x2, box.y2), from_mask) >= 0.9
            assert mask[ys, xs].size and box.x2 <= s.image.shape[1] and box.y2 <= s.image.shape[0]
            n_boxes += 1
    assert n_boxes >= 30
    assert any(len(s.boxes) >= 2 for s in scenes) and any(not s.boxes for s in scenes)


def test_logo_sizes_cover_the_configured_range() -> None:
    sides = [max(b.width, b.height) / 480 for s in _scenes(80, occlusion_probability=0) for b in s.boxes]
    assert min(sides) < 0.06 and max(sides) > 0.4


def test_pixels_of_the_box_really_show_the_logo() -> None:
    """The teal of the demo badge must be inside the box far more than outside it."""
    s = next(s for s in _scenes(20, occlusion_probability=0, hue=0, brightness=0, contrast=0) if s.boxes)
    b = s.boxes[0]
    inside = s.image[int(b.y1) : int(b.y2), int(b.x1) : int(b.x2)].reshape(-1, 3).astype(int)
    teal = (np.abs(inside - [0, 120, 128]).sum(axis=1) < 90).mean()
    assert teal > 0.1


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_scenes(tmp_path: Path) -> None:
    a = synthesize(SynthConfig(out=tmp_path / "a", scenes=12, seed=5))
    b = synthesize(SynthConfig(out=tmp_path / "b", scenes=12, seed=5, workers=1))
    c = synthesize(SynthConfig(out=tmp_path / "c", scenes=12, seed=6))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a" / "scenes" / "images") != _digest(tmp_path / "c" / "scenes" / "images")
    assert a.scenes == 12 and a.boxes == b.boxes and c.scenes == 12


def test_tiles_positive_hold_logo_pixels_negatives_none() -> None:
    rules = TileRules(size=96)
    n_pos = n_neg = 0
    for i, s in enumerate(_scenes(25)):
        union = np.zeros(s.image.shape[:2], np.float32)
        for m in s.masks:
            union = np.maximum(union, m)
        for label, t, px in scene_tiles(s.image, s.boxes, rules, np.random.default_rng(i)):
            x1, y1, x2, y2 = (int(round(v)) for v in t.box())
            window = union[max(y1, 0) : y2, max(x1, 0) : x2]
            assert px.shape == (96, 96, 3)
            if label is None:
                assert window.max(initial=0) == 0, "a negative tile holds logo pixels"
                n_neg += 1
            else:
                assert label == "demo-logo"
                assert (window >= VISIBLE_ALPHA).sum() >= 20, "a positive tile without logo pixels"
                n_pos += 1
    assert n_pos >= 20 and n_neg >= 50


def test_no_tiles_writes_scenes_only_and_reports_progress(tmp_path: Path) -> None:
    seen: list[int] = []
    res = synthesize(SynthConfig(out=tmp_path / "s", scenes=3, seed=1, tiles=False), progress=seen.append)
    assert seen == [1, 2, 3] and res.tiles_dir is None and res.tiles == {}
    assert not (tmp_path / "s" / "tiles").exists() and len(read_box_dataset(res.scenes_dir).images) == 3


#: `detect synth`'s flags: the declarations must keep giving exactly these (detector.console.flags).
SYNTH_FLAGS = (
    "--out --logo --backgrounds --distractors --scenes --seed --tile-size --tiles "
    "--width --height --min-logo --max-logo --max-logos --max-rotation --perspective --warp --occlusion --blur "
    "--brightness --contrast --hue --noise --jpeg-quality --text"
).split()


def test_declared_options_give_the_synth_flags() -> None:
    flags = [
        d.spec.flag or "--" + d.name.replace("_", "-")
        for cls in (SynthConfig, SceneConfig)
        for d in declared(cls)
        if d.spec.cli
    ]
    assert flags == SYNTH_FLAGS
    no_help = [d.name for cls in (SynthConfig, SceneConfig) for d in declared(cls) if d.spec.cli and not d.spec.help]
    assert no_help == ["seed", "width", "height"]  # as on the CLI before the declarations


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda: SceneConfig(max_logos=0), "max_logos"),
        (lambda: SceneConfig(occlusion_probability=1.5), "occlusion_probability"),
        (lambda: SceneConfig(jpeg_quality=(95, 35)), "jpeg_quality"),
        (lambda: SceneConfig(text_distractors=(0, 4, 5)), "text_distractors"),
        (lambda: SceneConfig(min_logo=0.5, max_logo=0.2), "min_logo"),
        (lambda: SynthConfig(out="o", scenes=0), "scenes"),
        (lambda: SynthConfig(out="o", logos="logo.png"), "logos"),
        (lambda: SynthConfig(out="o", tile_size=8), "tile_size"),
    ],
)
def test_bad_values_raise_an_error_naming_the_option(make, option: str) -> None:
    with pytest.raises(OptionError) as e:
        make()
    assert e.value.option == option and str(e.value).startswith(option + " ")


def test_text_pairs_parse_as_the_cli_gives_them() -> None:
    (q,) = [d for d in declared(SceneConfig) if d.name == "jpeg_quality"]
    assert q.spec.parse("35, 95") == (35, 95)
    cfg = SynthConfig(out="o", logos=["a.png", Path("b.png")], workers=1)
    assert cfg.logos == [Path("a.png"), Path("b.png")] and cfg.out == Path("o")


def test_docstring_examples_run() -> None:
    for name in ("detector.synth.scenes", "detector.synth.synthesize"):
        result = doctest.testmod(importlib.import_module(name))
        assert result.attempted and not result.failed, name


def test_cli_synth_writes_scenes_coco_csv_and_tiles(tmp_path: Path) -> None:
    r = run_cli("synth", "--out", str(tmp_path / "s"), "--scenes", "10", "--seed", "2", "--tile-size", "80")
    assert r.returncode == 0, r.stderr
    ds = read_box_dataset(tmp_path / "s" / "scenes")
    assert len(ds.images) == 10 and ds.labels == ["demo-logo"]
    coco = json.loads((tmp_path / "s" / "scenes" / "annotations.json").read_text())
    assert len(coco["annotations"]) == sum(len(r.boxes) for r in ds.images)
    rows = (tmp_path / "s" / "scenes" / "boxes.csv").read_text().splitlines()
    assert rows[0] == "file,label,x1,y1,x2,y2" and len(rows) - 1 == len(coco["annotations"])
    assert list((tmp_path / "s" / "tiles" / "demo-logo").glob("*_nohash_*.jpg"))
    assert list((tmp_path / "s" / "tiles" / "no-logo").glob("*.jpg"))
    assert "scenes/s" in r.stdout


def test_cli_synth_bad_logo_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "logo.png"
    bad.write_text("not a png")
    r = run_cli("synth", "--out", str(tmp_path / "s"), "--scenes", "2", "--logo", str(bad))
    assert r.returncode == 2 and "cannot read the logo" in r.stderr and "Traceback" not in r.stderr
