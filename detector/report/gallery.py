"""Crops for the gallery: only the few items the page shows are read (photos, or one video frame).

An item's image is found at its recorded path, else under `--images ROOT` (the recorded path taken
relative to it, then its name alone); a photo that cannot be found or read gets a placeholder, never
an error. Crops keep a margin around the box, draw the box, and are at most 220 px on a side.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.errors import DetectorError
from detector.images import load_image
from detector.video.decode import is_video_path

THUMB_SIDE = 220
MARGIN = 0.35  # of the box side, on every side


def resolve(path: str, images: Path | None) -> Path | None:
    """Where the recorded path is on this machine, or None."""
    p = Path(path)
    candidates = [p]
    if images is not None:
        candidates += [images / p] if not p.is_absolute() else []
        candidates += [images / p.name]
    return next((c for c in candidates if c.is_file()), None)


def _video_frame(path: Path, frame: int) -> np.ndarray | None:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None
        cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, bgr = cap.read()
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok and bgr is not None else None
    finally:
        cap.release()


def read_pixels(item: dict[str, Any], images: Path | None) -> np.ndarray | None:
    found = resolve(item["path"], images)
    if found is None:
        return None
    if item.get("frame") is not None or is_video_path(found):
        return _video_frame(found, int(item.get("frame") or 0))
    try:
        return load_image(found).pixels
    except DetectorError:
        return None


def crop(pixels: np.ndarray, box: tuple[float, float, float, float] | None, width: int, height: int) -> np.ndarray:
    """The box with a margin (the whole image without a box), the box drawn, shrunk to THUMB_SIDE."""
    h, w = pixels.shape[:2]
    img = pixels.copy()
    if box is not None:
        sx, sy = (w / width if width else 1.0), (h / height if height else 1.0)  # in case the file was resized
        x1, y1, x2, y2 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
        t = max(2, round(max(x2 - x1, y2 - y1) / 60))
        cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), (255, 64, 32), t, cv2.LINE_AA)
        m = MARGIN * max(x2 - x1, y2 - y1, 16)
        img = img[max(0, int(y1 - m)) : min(h, int(y2 + m)), max(0, int(x1 - m)) : min(w, int(x2 + m))]
    k = THUMB_SIDE / max(img.shape[:2])
    if k < 1:
        img = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    return img


def thumbnail_uri(item: dict[str, Any], images: Path | None) -> str | None:
    """A JPEG data URI of the item's crop, or None when its image cannot be found or read."""
    pixels = read_pixels(item, images)
    if pixels is None:
        return None
    img = crop(pixels, item.get("box"), int(item.get("width") or 0), int(item.get("height") or 0))
    if img.size == 0:
        return None
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 82])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii") if ok else None
