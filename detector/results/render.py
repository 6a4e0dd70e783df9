"""Annotated images: boxes and labels drawn on the photo, heatmap overlays, and writing them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detector.results.record import ScanResult

_COLORS = [(255, 64, 32), (32, 200, 255), (255, 210, 0), (160, 90, 255), (0, 220, 120)]


def annotate(pixels: np.ndarray, result: ScanResult, labels: list[str]) -> np.ndarray:
    """A copy of the image with the boxes and labels drawn (RGB in, RGB out)."""
    img = pixels.copy()
    t = max(2, round(min(img.shape[:2]) / 250))
    for b in result.boxes:
        color = _COLORS[labels.index(b.label) % len(_COLORS)] if b.label in labels else _COLORS[0]
        p1, p2 = (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2))
        cv2.rectangle(img, p1, p2, color, t, cv2.LINE_AA)
        text = f"{b.label} {b.score:.2f}"
        scale = max(0.45, min(img.shape[:2]) / 900)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = p1[1] - 4 if p1[1] - th - 6 > 0 else p2[1] + th + 4
        cv2.rectangle(img, (p1[0], y - th - 3), (p1[0] + tw + 4, y + base - 1), color, -1)
        cv2.putText(img, text, (p1[0] + 2, y - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def heatmap_overlay(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with a heatmap (values in [0, 1], any size) blended on top, JET colours."""
    h, w = pixels.shape[:2]
    hm = cv2.resize(np.clip(heat, 0, 1).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colored = cv2.cvtColor(cv2.applyColorMap((hm * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    weight = (alpha * np.clip(hm * 1.5, 0, 1))[..., None]
    return (pixels * (1 - weight) + colored * weight).astype(np.uint8)


def write_rgb(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext or ".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), params)
    if ok:
        path.write_bytes(buf.tobytes())  # handles unicode paths, unlike cv2.imwrite
