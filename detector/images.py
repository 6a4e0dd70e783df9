"""Decode image files the way real photo folders need: every failure is a value, never a crash.

Photos from phones and social media arrive rotated by EXIF, in palette/CMYK/16-bit modes, animated,
truncated or misnamed. Everything downstream wants one thing: an RGB uint8 array the right way up.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from detector.errors import ImageLoadError
from detector.options import check_fields, option

#: Extensions treated as images when walking folders (matched case-insensitively).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jfif", ".pgm", ".ppm"}
)

#: Default cap on decoded pixels: ~ a 100 MP photo. Larger files are rejected as likely bombs.
DEFAULT_MAX_PIXELS = 100_000_000
#: Default cap on a file's size, checked with stat before a byte is read.
DEFAULT_MAX_FILE_BYTES = 256 * 2**20
#: The only formats parsed (Pillow names). Photo folders hold these; anything else (EPS, which Pillow
#: hands to Ghostscript, PSD, ICO, ...) is "not an image", whatever its extension says.
#: The most pixels max_pixels may allow (a 100,000 x 100,000 image; 30 GB decoded).
MAX_PIXELS_LIMIT = 10**10


@dataclass(frozen=True)
class ImageLimits:
    """The decoder's limits: a file over either is refused (from its header, or from stat before a
    byte is read) with an error result, never decoded.

    Example:
        >>> ImageLimits(max_file_mb=1).max_file_bytes
        1048576
    """

    max_pixels: int = option(
        DEFAULT_MAX_PIXELS, "Refuse larger images (decompression bombs).", range=(1, MAX_PIXELS_LIMIT)
    )
    max_file_mb: float = option(
        DEFAULT_MAX_FILE_BYTES / 2**20, "Refuse larger files, from stat, before reading them.", range=(0.001, 2**30)
    )

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 2**20)


ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "DIB", "WEBP", "TIFF", "PPM")  # JPEG covers MPO (phones)

# Pillow refuses truncated files by default, which is what we want; never silently pad with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Past its own limit Pillow only warns; our limit is checked on the header first, so a warning that
# still fires means a bomb: make it an error, process-wide (warnings.catch_warnings is not thread-safe).
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
# Pillow warns about what it tolerates in hostile files (corrupt EXIF, odd chunks): not the user's concern.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


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


def check_file(path: str | Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> os.stat_result:
    """Refuse, from `stat` alone, what must not be opened: missing paths, broken or looping links,
    folders, FIFOs and devices (opening a FIFO blocks; /dev/zero never ends), empty files and files
    over the size cap. Raises ImageLoadError; returns the stat of the file the path leads to."""
    name = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageLoadError(name, "broken symbolic link (its target does not exist)", "missing") from None
        raise ImageLoadError(name, "no such file", "missing") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageLoadError(name, "symbolic link loop", "not_a_file") from None
        raise ImageLoadError(name, f"cannot read: {e.strerror or e}", "unreadable") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(name, "a folder, not a file", "not_a_file")
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _SPECIAL if test(st.st_mode)), "special file")
        raise ImageLoadError(name, f"not a regular file (a {kind})", "not_a_file")
    if st.st_size == 0:
        raise ImageLoadError(name, "empty file (0 bytes)", "empty")
    if st.st_size > max_file_bytes:
        raise ImageLoadError(name, _too_big(st.st_size, max_file_bytes), "too_large")
    return st


_SPECIAL = (
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def _too_big(size: int, cap: int) -> str:
    return f"file too large ({size / 2**20:,.1f} MiB > {cap / 2**20:,.1f} MiB); raise --max-file-mb"


def read_capped(path: str | Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> tuple[bytes, str]:
    """The file's bytes and their sha256, hashed while reading, never more than the cap.

    Opened non-blocking and checked again on the open descriptor, so a path swapped for a FIFO or a
    device after `check_file` is refused instead of hanging or reading forever; a file that grows
    past the cap while being read is refused at the first byte over it."""
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ImageLoadError(name, f"cannot read: {e.strerror or e}", "unreadable") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ImageLoadError(name, "not a regular file", "not_a_file")
        h = hashlib.sha256()
        buf = bytearray()
        try:
            while chunk := f.read(1 << 20):
                if len(buf) + len(chunk) > max_file_bytes:
                    raise ImageLoadError(name, _too_big(len(buf) + len(chunk), max_file_bytes), "too_large")
                h.update(chunk)
                buf += chunk
        except OSError as e:
            raise ImageLoadError(name, f"cannot read: {e.strerror or e}", "unreadable") from None
    if not buf:
        raise ImageLoadError(name, "empty file (0 bytes)", "empty")
    return bytes(buf), h.hexdigest()


def refusal(path: str | Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> str:
    """Why `load_image` would refuse the path before decoding a byte ("" if it would not): what
    `--resume` compares with an error record of a file that was never read."""
    try:
        check_file(path, max_file_bytes)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except ImageLoadError as e:
        return e.reason
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    os.close(fd)
    return ""


def allow_pixels(max_pixels: int) -> None:
    """Let Pillow's own bomb guard pass up to `max_pixels` (its default, ~89 Mpx, would silently win over
    a larger --max-pixels). Only ever raised, so every caller's own limit (checked on the header, before
    decoding) stays the one that refuses."""
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and max_pixels > current:
        Image.MAX_IMAGE_PIXELS = max_pixels


def header_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from a regular file's header without decoding it; None when Pillow cannot tell."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            with Image.open(f, formats=ALLOWED_FORMATS) as img:
                return img.size
        except Exception:  # any failure here is reported properly by load_image
            return None


def sha256_capped(path: str | Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> str:
    """The file's content hash, streamed (nothing kept); "" when it cannot be read within the checks."""
    try:
        check_file(path, max_file_bytes)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (ImageLoadError, OSError):
        return ""
    h, seen = hashlib.sha256(), 0
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        try:
            while chunk := f.read(1 << 20):
                seen += len(chunk)
                if seen > max_file_bytes:
                    return ""
                h.update(chunk)
        except OSError:
            return ""
    return h.hexdigest()


def load_image(
    path: str | Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> LoadedImage:
    """Decode `path` to RGB uint8, upright. Raises ImageLoadError with a short reason.

    Checked before reading (stat: a regular file under `max_file_bytes`), hashed while reading, the
    pixel count checked on the header before decoding, and only the formats of ALLOWED_FORMATS are
    parsed (no EPS through Ghostscript, no format a photo folder does not hold). A file that was read
    carries its sha256 on the error too, so `--resume` can tell whether it changed.
    `draft_size` lets JPEG decode at a reduced scale (much faster) when the caller will shrink the
    image anyway, as training at small input sizes does.
    """
    check_file(path, max_file_bytes)
    data, sha = read_capped(path, max_file_bytes)
    try:
        pixels = _decode(str(path), data, max_pixels, draft_size)
    except ImageLoadError as e:
        e.sha256 = sha
        raise
    return LoadedImage(pixels=pixels, path=str(path), original_size=(pixels.shape[1], pixels.shape[0]), sha256=sha)


def _decode(name: str, data: bytes, max_pixels: int, draft_size: tuple[int, int] | None) -> np.ndarray:
    allow_pixels(max_pixels)
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
            w, h = img.size
            if w * h > max_pixels:
                reason = f"too many pixels ({w}x{h} > {max_pixels:,}); raise --max-pixels"
                raise ImageLoadError(name, reason, "too_many_pixels")
            if getattr(img, "is_animated", False):
                img.seek(0)
            if draft_size is not None and img.format == "JPEG":
                img.draft("RGB", draft_size)
            img.load()
            img = ImageOps.exif_transpose(img)
            img = _to_rgb(img)
            return np.asarray(img, dtype=np.uint8).copy()
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(name, "not an image (unrecognised format)", "not_an_image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))  # Pillow: "Image size (N pixels) exceeds limit ..."
        claimed = f"{int(found.group(1)):,} > " if found else ""
        reason = f"too many pixels ({claimed}{max_pixels:,}, a decompression bomb); raise --max-pixels"
        raise ImageLoadError(name, reason, "too_many_pixels") from None
    except MemoryError:
        raise ImageLoadError(name, "cannot decode: out of memory", "too_many_pixels") from None
    except OSError as e:
        msg = str(e) or e.__class__.__name__
        if "truncated" in msg.lower():
            msg = "truncated file"
        raise ImageLoadError(name, f"cannot decode: {msg}") from None
    except Exception as e:  # Pillow's plugins raise ValueError, SyntaxError, EOFError, struct.error, ...
        text = (str(e).splitlines() or [e.__class__.__name__])[0][:200]
        raise ImageLoadError(name, f"cannot decode: {text}") from None


def resize_to(pixels: np.ndarray, size: int) -> np.ndarray:
    """Squash to size x size (what the classifier sees for a whole image or a tile)."""
    import cv2

    h, w = pixels.shape[:2]
    if (h, w) == (size, size):
        return pixels
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(pixels, (size, size), interpolation=interp)
