"""Decode image files the way real photo folders need: every failure is a value, never a crash.

Photos from phones and social media arrive rotated by EXIF, in palette/CMYK/16-bit modes, animated,
truncated or misnamed. Everything downstream wants one thing: an RGB uint8 array the right way up.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from detector.errors import ImageLoadError

#: Extensions treated as images when walking folders (matched case-insensitively).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jfif", ".pgm", ".ppm"}
)

#: Default cap on decoded pixels: ~ a 100 MP photo. Larger files are rejected as likely bombs.
DEFAULT_MAX_PIXELS = 100_000_000

# Pillow refuses truncated files by default, which is what we want; never silently pad with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class LoadedImage:
    """Pixels plus the facts a result needs about where they came from."""

    pixels: np.ndarray  # HxWx3 uint8, RGB, EXIF orientation applied
    path: str
    original_size: tuple[int, int]  # (width, height) after orientation
    sha256: str = ""  # of the file's bytes, hashed from the same read that decoded them


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale the real range to 8 bits instead of clipping to white.
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) or 1.0
        return Image.fromarray((arr * (255.0 / hi)).clip(0, 255).astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite transparency onto white, as viewers and browsers show it.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(
    path: str | Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> LoadedImage:
    """Decode `path` to RGB uint8, upright. Raises ImageLoadError with a short reason.

    `draft_size` lets JPEG decode at a reduced scale (much faster) when the caller will shrink the
    image anyway, as training at small input sizes does.
    """
    p = Path(path)
    try:
        if not p.is_file():
            raise ImageLoadError(str(path), "no such file", "missing")
        if p.stat().st_size == 0:
            raise ImageLoadError(str(path), "empty file (0 bytes)", "empty")
        data = p.read_bytes()  # one read serves both the content hash and the decoder
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > max_pixels:
                    reason = f"too many pixels ({w}x{h} > {max_pixels:,}); raise --max-pixels"
                    raise ImageLoadError(str(path), reason, "too_many_pixels")
                if getattr(img, "is_animated", False):
                    img.seek(0)
                if draft_size is not None and img.format == "JPEG":
                    img.draft("RGB", draft_size)
                img.load()
                img = ImageOps.exif_transpose(img)
                img = _to_rgb(img)
                pixels = np.asarray(img, dtype=np.uint8).copy()
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(str(path), "not an image (unrecognised format)", "not_an_image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(str(path), "too many pixels (decompression bomb guard)", "too_many_pixels") from None
    except OSError as e:
        msg = str(e) or e.__class__.__name__
        if "truncated" in msg.lower():
            msg = "truncated file"
        raise ImageLoadError(str(path), f"cannot decode: {msg}") from None
    except (ValueError, SyntaxError, EOFError) as e:
        raise ImageLoadError(str(path), f"cannot decode: {e}") from None
    return LoadedImage(
        pixels=pixels,
        path=str(path),
        original_size=(pixels.shape[1], pixels.shape[0]),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def resize_to(pixels: np.ndarray, size: int) -> np.ndarray:
    """Squash to size x size (what the classifier sees for a whole image or a tile)."""
    import cv2

    h, w = pixels.shape[:2]
    if (h, w) == (size, size):
        return pixels
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(pixels, (size, size), interpolation=interp)
