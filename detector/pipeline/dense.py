"""Dense (fully convolutional) evidence: the backbone runs once per pyramid level, not once per window.

With 50% overlap a sliding window computes every pixel about four times per level. The classifier is
convolutions up to the CAM layer, then a linear head over a global average, so the per-location class
logits of the whole level (the backend's `cam` output on the whole image) already hold every window:
a window's logits are the mean of the map cells it covers, and its CAM is that crop of the map. The
windows are the tiles mode's windows snapped to the CAM stride, so everything after this stage
(stitching, boxes, verdicts) is shared with the tiles mode. Cells near a window's border see some
context outside the window, which is the one (small) difference from cutting the window out.

A level runs whole when its activations fit a memory budget; larger levels run in overlapping blocks:
every window lies inside one block with half a window of context around it, so blocks change its scores
very little, but their margins are computed twice (at 299 px, 1024-px blocks made a 1920x1080 dense scan
slower than one pass per level), so blocks are only as many as the budget needs.
"""

from __future__ import annotations

import numpy as np

from detector.backends.base import Backend
from detector.model.meta import CAM_GEOMETRY
from detector.pipeline.tiling import Tile, resize_level, tiles_for_level

#: Memory one backbone call may take for activations. Measured with onnxruntime (Inception v3 to
#: mixed2): peak RSS grows ~150 bytes per input pixel (1920x1080: +313 MiB; 4000x3000: +1.7 GiB).
BLOCK_MEMORY_MIB = 1024
BYTES_PER_PIXEL = 160
#: The largest block, in level pixels: 6.7 Mpx (a 2590x2590 square; a 1920x1080 level runs whole).
BLOCK_PIXELS = BLOCK_MEMORY_MIB * 2**20 // BYTES_PER_PIXEL


def block_side(width: int, height: int, budget_pixels: int = BLOCK_PIXELS) -> int:
    """One block for the whole level when it fits the budget, else square blocks of the budget."""
    if width * height <= budget_pixels:
        return max(width, height)
    return int(budget_pixels**0.5)


_cells_cache: dict[tuple[str, int], int] = {}


def cells_per_window(backend: Backend, size: int) -> int:
    """How many CAM cells one window of `size` pixels has (probed once per model and size)."""
    key = (backend.model_sha256, size)
    if key not in _cells_cache:
        _cells_cache[key] = int(backend.predict(np.zeros((1, size, size, 3), np.float32)).cams.shape[1])
    return _cells_cache[key]


def _snap(starts: list[int], stride: int) -> list[int]:
    return sorted({int(round(s / stride)) * stride for s in starts})


def level_windows(width: int, height: int, scale: float, size: int, overlap: float, stride: int) -> list[Tile]:
    """The tiles mode's windows of one level, moved to the nearest multiple of the CAM stride."""
    tiles = tiles_for_level(width, height, scale, size, overlap)
    xs = _snap(sorted({t.x for t in tiles}), stride)
    ys = _snap(sorted({t.y for t in tiles}), stride)
    return [Tile(scale, x, y, size) for y in ys for x in xs]


def _blocks(length: int, size: int, stride: int, block: int, margin: int) -> list[int]:
    """Block starts (multiples of the stride) along one axis; see `_block_for`."""
    if length <= block:
        return [0]
    step = max(stride, (block - size - 2 * margin) // stride * stride)
    starts = [0]
    while starts[-1] + block < length:
        starts.append(starts[-1] + step)
    return starts


def _block_for(x: int, starts: list[int], margin: int) -> int:
    """The block whose inner part (a margin of context on each side) holds the window starting at x."""
    return max([b for b in starts if b + margin <= x] or [0])


def _pad_to(img: np.ndarray, size: int) -> np.ndarray:
    """A level smaller than one window is padded at the right/bottom, as `cut_tiles` pads tiles."""
    h, w = img.shape[:2]
    if h >= size and w >= size:
        return img
    out = np.zeros((max(h, size), max(w, size), 3), img.dtype)
    out[:h, :w] = img
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def dense_level(
    backend: Backend, level: np.ndarray, windows: list[Tile], n: int, stride: int, with_features: bool, block: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Window CAMs (N, n, n, C), probabilities and features of one level, from per-block maps."""
    h, w = level.shape[:2]
    size = windows[0].size
    margin = size // 2  # context kept around each window, so a block edge does not change its scores
    bxs, bys = _blocks(w, size, stride, block, margin), _blocks(h, size, stride, block, margin)
    cams: list[np.ndarray | None] = [None] * len(windows)
    feats: list[np.ndarray | None] = [None] * len(windows)
    owner: dict[tuple[int, int], list[int]] = {}
    for i, t in enumerate(windows):
        bx, by = _block_for(t.x, bxs, margin), _block_for(t.y, bys, margin)
        owner.setdefault((bx, by), []).append(i)
    for (bx, by), idx in owner.items():
        out = backend.predict(level[by : by + block, bx : bx + block][None].astype(np.float32), with_features)
        for i in idx:
            t = windows[i]
            ky = min((t.y - by) // stride, out.cams.shape[1] - n)
            kx = min((t.x - bx) // stride, out.cams.shape[2] - n)
            cams[i] = out.cams[0, ky : ky + n, kx : kx + n]
            if with_features:
                feats[i] = out.features[0, ky : ky + n, kx : kx + n]
    cam_arr = np.stack(cams)
    probs = _softmax(cam_arr.mean(axis=(1, 2)))
    return cam_arr, probs, (np.stack(feats) if with_features else None)


def dense_evidence(
    backend: Backend,
    pixels: np.ndarray,
    scales: list[float],
    overlap: float,
    with_features: bool = False,
    block: int | None = None,
) -> tuple[list[Tile], np.ndarray, np.ndarray, np.ndarray | None]:
    """Every level once through the backend -> (windows, probs, cams, features) like the tiles mode.

    `block`: the side of the blocks large levels are cut into; None: from the memory budget."""
    size = backend.meta.input_size
    stride = CAM_GEOMETRY[backend.meta.cam_layer][0]
    n = cells_per_window(backend, size)
    h, w = pixels.shape[:2]
    all_windows, probs, cams, feats = [], [], [], []
    for s in scales:
        level = _pad_to(resize_level(pixels, s), size)
        lh, lw = level.shape[:2]
        windows = level_windows(lw, lh, 1.0, size, overlap, stride)
        windows = [Tile(s, t.x, t.y, size) for t in windows]
        side = block if block is not None else block_side(lw, lh)
        side = -(-max(side, 2 * size + stride) // stride) * stride  # a multiple of the stride, >= 2 windows
        c, p, f = dense_level(backend, level, windows, n, stride, with_features, side)
        all_windows += windows
        probs.append(p)
        cams.append(c)
        if with_features:
            feats.append(f)
    return (
        all_windows,
        np.concatenate(probs),
        np.concatenate(cams),
        np.concatenate(feats) if with_features else None,
    )
