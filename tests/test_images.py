"""Image decoding against the files real photo folders contain, each written here by Pillow/OpenCV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.errors import ImageLoadError
from detector.images import load_image


def _gradient(w: int = 40, h: int = 30) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, w)[None, :]
    img[..., 1] = np.linspace(0, 255, h)[:, None]
    return img


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    p = tmp_path / "rotated.jpg"
    img = Image.fromarray(_gradient(40, 30))
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(p, exif=exif, quality=95)
    loaded = load_image(p)
    assert loaded.pixels.shape == (40, 30, 3)  # width and height swapped
    assert loaded.original_size == (30, 40)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_modes_become_rgb_uint8(tmp_path: Path, mode: str) -> None:
    base = Image.fromarray(_gradient())
    if mode == "I;16":
        img = Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257)
    else:
        img = base.convert(mode)
    ext = ".jpg" if mode == "CMYK" else (".tif" if mode == "I;16" else ".png")
    p = tmp_path / f"img-{mode.replace(';', '')}{ext}"
    img.save(p)
    loaded = load_image(p)
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.shape == (30, 40, 3)
    if mode == "I;16":  # the 16-bit range is scaled, not clipped to white
        assert 100 < loaded.pixels.mean() < 160


def test_transparent_pixels_composite_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:5, :, :] = (255, 0, 0, 255)
    p = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(p)
    px = load_image(p).pixels
    assert tuple(px[0, 0]) == (255, 0, 0)
    assert tuple(px[9, 9]) == (255, 255, 255)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    px = load_image(p).pixels
    assert px[10, 10, 0] > 200 and px[10, 10, 2] < 50


def test_unicode_path(tmp_path: Path) -> None:
    p = tmp_path / "фото логотип 写真.png"
    Image.fromarray(_gradient()).save(p)
    assert load_image(p).pixels.shape == (30, 40, 3)


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("notes.png", b"this is a text file, not a picture\n" * 10, "not an image"),
    ],
)
def test_bad_files_raise_with_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason) as e:
        load_image(p)
    assert e.value.path == str(p)


def test_truncated_jpeg(tmp_path: Path) -> None:
    full = tmp_path / "full.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(full, quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ImageLoadError, match="truncated|decode"):
        load_image(cut)


def test_pixel_cap_guards_against_bombs(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    Image.new("L", (3000, 3000)).save(p)  # 9 MP of zeros: a few KB on disk
    with pytest.raises(ImageLoadError, match="too many pixels"):
        load_image(p, max_pixels=1_000_000)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


def test_decode_workers_share_a_memory_budget(tmp_path: Path) -> None:
    """Four workers running ahead never hold more decoded images than the budget allows (one image
    larger than the whole budget still runs, alone); the order of the results is kept."""
    import time

    from detector.results.folders import iter_loaded
    from detector.results.membudget import MemoryBudget, decode_cost

    paths = []
    for i in range(8):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((300, 400, 3), i * 20, np.uint8)).save(p)
        paths.append(p)
    cost = max(decode_cost(p, 1 << 30, 10**8) for p in paths)
    assert cost > 400 * 300 * 3  # the header's pixels count, not only the file's bytes
    budget = MemoryBudget(int(cost * 2.5))  # room for two images at a time
    seen = []
    for p, img, _sha, err in iter_loaded(paths, 10**8, workers=4, prefetch=4, budget=budget):
        assert not err and img is not None
        seen.append((p, int(img.pixels[0, 0, 0])))
        time.sleep(0.02)  # a slow scan: the workers would run ahead if they could
    assert [p for p, _ in seen] == paths and [v for _, v in seen] == [i * 20 for i in range(8)]
    assert budget.peak <= 2 * cost and budget.held == 0
    alone = MemoryBudget(10)  # smaller than any image: each one runs by itself
    assert len(list(iter_loaded(paths, 10**8, workers=4, budget=alone))) == 8 and alone.peak <= cost
