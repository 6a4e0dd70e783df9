"""Stage unit tests, stitch (detector/pipeline/stitch.py): tile CAMs -> boxes at one pyramid level.

Synthetic CAM arrays, no model. Where a box must land is worked out from the (stride, offset) cell
geometry `LevelCanvas.add` documents (as model CAM_GEOMETRY gives it per layer): cell i of a map covers
the tile's level pixels offset - stride/2 + stride*i .. + stride, and a level pixel p is image pixel
p / scale. The canvas holds the image at resolution k, so a box is known to 1/k image pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from detector.geometry import Detection
from detector.pipeline.stitch import LEVEL_FILL, LevelCanvas, fits_level
from detector.pipeline.tiling import Tile

MIXED2 = (8, 13)  # (stride, offset) of Inception v3's mixed0-2 maps
MIXED5 = (16, 21)  # mixed3-7


def cell_box(tile: Tile, geometry: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> tuple:
    """Image-pixel box of map cells rows[0]..rows[1], cols[0]..cols[1] (inclusive), by the documented geometry."""
    stride, offset = geometry
    x1 = (tile.x + offset - stride / 2 + stride * cols[0]) / tile.scale
    x2 = (tile.x + offset - stride / 2 + stride * (cols[1] + 1)) / tile.scale
    y1 = (tile.y + offset - stride / 2 + stride * rows[0]) / tile.scale
    y2 = (tile.y + offset - stride / 2 + stride * (rows[1] + 1)) / tile.scale
    return (x1, y1, x2, y2)


def hot(shape: tuple[int, int], *cells: tuple[int, int]) -> np.ndarray:
    cam = np.zeros(shape, np.float32)
    for r, c in cells:
        cam[r, c] = 1.0
    return cam


def corners(d: Detection) -> tuple[float, float, float, float]:
    return (d.x1, d.y1, d.x2, d.y2)


def test_one_hot_cell_gives_one_box_on_that_cell() -> None:
    """Tile at the image origin, level = image, canvas = image: cell (3, 5) of a 7x7 mixed2 map covers
    x 13 - 4 + 8*5 = 49 .. 57, y 13 - 4 + 8*3 = 33 .. 41 (not 57..68, where stretching 7 cells over the
    80-pixel tile would put it). Bilinear upsampling puts the half-peak contour on the cell's edges."""
    canvas = LevelCanvas(200, 150, k=1.0)
    tile = Tile(1.0, 0, 0, 80)
    canvas.add(tile, hot((7, 7), (3, 5)), prob=0.8, geometry=MIXED2)
    (box,) = canvas.boxes("acme", scale=1.0, threshold=0.5)
    assert cell_box(tile, MIXED2, (3, 3), (5, 5)) == (49, 33, 57, 41)
    assert corners(box) == pytest.approx((49, 33, 57, 41), abs=1.0)
    assert box.label == "acme" and box.scale == 1.0
    assert 0.5 * 0.8 < box.score <= 0.8  # tile probability x the normalized map under the box


def test_the_box_is_in_image_pixels_for_any_level_and_canvas_resolution() -> None:
    """A tile of the 2x level at level pixels (64, 32), a quarter-size canvas: cell (1, 4) of a 6x6 mixed5
    map covers level x 64 + 21 - 8 + 64 = 141 .. 157 and y 32 + 13 + 16 = 61 .. 77, image x 70.5 .. 78.5 and
    y 30.5 .. 38.5 (to the canvas's 2 image pixels)."""
    k = 0.5
    canvas = LevelCanvas(400, 300, k=k)
    assert canvas.shape == (150, 200)
    tile = Tile(2.0, 64, 32, 128)
    canvas.add(tile, 3.5 * hot((6, 6), (1, 4)), prob=0.9, geometry=MIXED5)  # the map's own peak does not matter
    (box,) = canvas.boxes("acme", scale=2.0, threshold=0.5)
    want = cell_box(tile, MIXED5, (1, 1), (4, 4))
    assert want == (70.5, 30.5, 78.5, 38.5)
    assert corners(box) == pytest.approx(want, abs=1 / k)
    assert box.scale == 2.0


def test_two_blobs_far_apart_give_two_boxes() -> None:
    canvas = LevelCanvas(200, 150, k=1.0)
    tile = Tile(1.0, 0, 0, 80)
    canvas.add(tile, hot((7, 7), (0, 0), (6, 6)), prob=0.8, geometry=MIXED2)
    boxes = sorted(canvas.boxes("acme", 1.0, threshold=0.5, join_px=4.0), key=lambda d: d.x1)
    assert len(boxes) == 2
    assert corners(boxes[0]) == pytest.approx(cell_box(tile, MIXED2, (0, 0), (0, 0)), abs=1.0)
    assert corners(boxes[1]) == pytest.approx(cell_box(tile, MIXED2, (6, 6), (6, 6)), abs=1.0)


def test_fragments_closer_than_join_px_are_one_box() -> None:
    """Cells (3, 1) and (3, 3) of a mixed2 map: above half their peak over x 17..25 and 33..41, a gap of
    8 pixels. Joining over 10 pixels makes one box spanning both cells; over 2 pixels, two boxes."""
    canvas = LevelCanvas(200, 150, k=1.0)
    tile = Tile(1.0, 0, 0, 80)
    canvas.add(tile, hot((7, 7), (3, 1), (3, 3)), prob=0.7, geometry=MIXED2)
    assert len(canvas.boxes("acme", 1.0, threshold=0.5)) == 2
    assert len(canvas.boxes("acme", 1.0, threshold=0.5, join_px=2.0)) == 2
    (joined,) = canvas.boxes("acme", 1.0, threshold=0.5, join_px=10.0)
    assert corners(joined) == pytest.approx(cell_box(tile, MIXED2, (3, 3), (1, 3)), abs=1.0)  # 17, 33, 41, 41


def test_a_zero_map_gives_nothing() -> None:
    canvas = LevelCanvas(200, 150, k=1.0)
    tile = Tile(1.0, 0, 0, 80)
    canvas.add(tile, np.zeros((7, 7), np.float32), prob=0.99, geometry=MIXED2)
    canvas.add(tile, -hot((7, 7), (2, 2)), prob=0.99, geometry=MIXED2)  # no positive evidence either
    assert not canvas.norm.any() and not canvas.score.any()
    assert canvas.boxes("acme", 1.0, threshold=0.5) == []


def test_tiles_paint_the_max_and_a_tile_past_the_border_is_clipped() -> None:
    canvas = LevelCanvas(100, 100, k=1.0)
    a, b = Tile(1.0, 0, 0, 80), Tile(1.0, 60, 60, 80)  # b reaches past the image (a right/bottom border tile)
    canvas.add(a, hot((7, 7), (0, 0)), prob=0.4, geometry=MIXED2)
    canvas.add(b, hot((7, 7), (2, 2)), prob=0.9, geometry=MIXED2)  # cell at image 60+9+16 = 85 .. 93
    canvas.add(b, hot((7, 7), (6, 6)), prob=0.9, geometry=MIXED2)  # cell at 60+9+48 = 117..125: off the image
    assert canvas.norm.max() <= 1.0
    boxes = sorted(canvas.boxes("acme", 1.0, threshold=0.5), key=lambda d: d.x1)
    assert len(boxes) == 2
    assert corners(boxes[1]) == pytest.approx(cell_box(b, MIXED2, (2, 2), (2, 2)), abs=1.0)
    assert boxes[0].score < boxes[1].score  # each box scored by its own tile's probability
    assert all(d.x2 <= 100 and d.y2 <= 100 for d in boxes)


def test_boxes_under_min_area_are_dropped() -> None:
    canvas = LevelCanvas(200, 150, k=1.0)
    canvas.add(Tile(1.0, 0, 0, 80), hot((7, 7), (3, 3)), prob=0.8, geometry=MIXED2)  # an 8x8 box: 64 px
    assert len(canvas.boxes("acme", 1.0, 0.5, min_area_px=60)) == 1
    assert canvas.boxes("acme", 1.0, 0.5, min_area_px=70) == []


def _side(side: float, scale: float) -> Detection:
    return Detection("acme", 0.9, 10, 10, 10 + side, 10 + side / 2, scale)  # the long side counts


def test_fits_level_within_the_fill_bounds() -> None:
    tile = 100
    lo, hi = LEVEL_FILL
    assert (lo, hi) == (0.12, 1.15)
    assert fits_level(_side(50, 1.0), tile)  # fill 0.5
    assert fits_level(_side(12, 1.0), tile) and fits_level(_side(115, 1.0), tile)  # both bounds included
    assert not fits_level(_side(11, 1.0), tile) and not fits_level(_side(116, 1.0), tile)
    # the level's scale counts: 200 image px at scale 0.5 span 100 level px, the whole tile
    assert fits_level(_side(200, 0.5), tile) and not fits_level(_side(200, 1.0), tile)
    assert not fits_level(_side(20, 0.5), tile) and fits_level(_side(20, 1.0), tile)  # 0.1 vs 0.2
    tall = Detection("acme", 0.9, 0, 0, 5, 60, 1.0)  # narrow but tall: the long side is 60 -> fill 0.6
    assert fits_level(tall, tile)
