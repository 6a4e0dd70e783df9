"""A hostile-input corpus, generated in code: bad, odd and malicious files and names, mixed with good
images. Used by tests/test_hostile.py (CLI and server) and benchmarks/hostile.py.

Each case says what must come of it: `ok` (a result without errors), `error` (an error record, whose
first error contains `reason`), `skip` (a documented skip of the folder walk: hidden names, names
without an image extension, folders and links to folders) or `any` (a record, error or not, but
never a crash). `server` says whether the bytes can be uploaded (FIFOs, links and sparse giants are
file-system cases, for the CLI only). Think like an attacker: decoder bombs in headers, formats
Pillow would hand to other programs, names that break terminals, JSON, CSV and path handling, files
that never end, and shapes that make the pyramid explode.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: Limits the corpus is scanned with (CLI flags and server options).
MAX_PIXELS = 50_000_000
MAX_FILE_MB = 64
UPLOAD_MB = 8


@dataclass(frozen=True)
class Case:
    name: bytes  # the file name as bytes (need not be UTF-8)
    expect: str  # ok | error | skip | any
    make: Callable[[bytes], None]  # writes the case at this path (bytes)
    reason: str = ""  # for `error`: a substring of the record's first error
    server: bool = True  # whether it can be uploaded as a file part

    @property
    def label(self) -> str:
        """The name, printable: undecodable bytes and control characters escaped (no terminal tricks)."""
        text = self.name.decode("utf-8", "backslashreplace")
        return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _photo(seed: int, w: int = 160, h: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = (230, 40, 40)
    return img


def encode(pixels: np.ndarray | Image.Image, fmt: str, **kw) -> bytes:
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_header(width: int, height: int, rows: int = 1, extra: bytes = b"") -> bytes:
    """A PNG whose header claims width x height, with `rows` rows of real (zero) data: a bomb header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * min(rows * (width + 1), 1 << 20), 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _jpeg_with_dims(width: int, height: int) -> bytes:
    data = bytearray(encode(_photo(1, 64, 48), "JPEG"))
    i = data.find(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _write(data: bytes) -> Callable[[bytes], None]:
    def make(path: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)

    return make


def _symlink(target: bytes) -> Callable[[bytes], None]:
    return lambda path: os.symlink(target, path)


def _sparse(size: int) -> Callable[[bytes], None]:
    def make(path: bytes) -> None:
        with open(path, "wb") as f:
            f.write(b"\xff\xd8\xff\xe0")  # a JPEG's first bytes, then a hole: costs no disk
            f.truncate(size)

    return make


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("inside.jpg", encode(_photo(3), "JPEG"))
    return buf.getvalue()


def _gif_frames(n: int) -> bytes:
    frames = [Image.fromarray(_photo(i, 64, 48)).convert("P") for i in range(n)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=10, loop=0)
    return buf.getvalue()


def _gif_screen(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.fromarray(_photo(2, 16, 16)).convert("P"), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def _exif(orientation_blob: bytes) -> bytes:
    jpeg = encode(_photo(4), "JPEG")
    app1 = b"\xff\xe1" + struct.pack(">H", len(orientation_blob) + 2) + orientation_blob
    return jpeg[:2] + app1 + jpeg[2:]


def _bad_orientation() -> bytes:
    img = Image.fromarray(_photo(5))
    exif = img.getexif()
    exif[0x0112] = 9  # no such orientation
    return encode(img, "JPEG", exif=exif)


def _broken_crc() -> bytes:
    data = bytearray(encode(_photo(6), "PNG"))
    i = data.find(b"IDAT")
    data[i + 8] ^= 0xFF  # flip a byte inside the compressed data: CRC and zlib both break
    return bytes(data)


def _tiff_bad_ifd() -> bytes:
    return b"II*\x00" + struct.pack("<I", 0x7FFFFFF0) + b"\0" * 64


def _bmp_huge() -> bytes:
    header = b"BM" + struct.pack("<IHHI", 70, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, 60000, 60000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return header + info + b"\0" * 16


def _ztxt_bomb() -> bytes:
    """A PNG with a text chunk that decompresses to 64 MB (Pillow caps text chunks)."""
    payload = b"Comment\0\0" + zlib.compress(b"A" * (64 << 20), 9)
    return png_with_header(64, 48, rows=48, extra=_chunk(b"zTXt", payload))


def _polyglot() -> bytes:
    return encode(_photo(7), "PNG") + _zip_bytes()


def _eps() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n%%EndComments\nnewpath 0 0 moveto showpage\n"


def good_images() -> dict[bytes, bytes]:
    """Plain photos that must each get a result without errors, wherever they are in the mix."""
    return {f"good-{i:02d}.jpg".encode(): encode(_photo(100 + i), "JPEG", quality=90) for i in range(6)}


def cases() -> list[Case]:
    good = encode(_photo(8), "PNG")
    jpeg = encode(_photo(9), "JPEG")
    deep = b"/".join([b"d"] * 40) + b"/deep.png"
    return [
        # -- contents: not images, broken images, formats we must not parse -------------------------
        Case(b"empty.jpg", "error", _write(b""), "empty file"),
        Case(b"one-byte.jpg", "error", _write(b"\xff"), "not an image"),
        Case(b"text.jpg", "error", _write(b"just some text\n" * 50), "not an image"),
        Case(b"html.png", "error", _write(b"<html><script>alert(1)</script></html>"), "not an image"),
        Case(b"svg.png", "error", _write(b'<svg xmlns="http://www.w3.org/2000/svg"/>'), "not an image"),
        Case(b"eps-as.jpg", "error", _write(_eps()), "not an image"),
        Case(b"zip-as.jpg", "error", _write(_zip_bytes()), "not an image"),
        Case(b"truncated.jpg", "error", _write(jpeg[: len(jpeg) // 2]), ""),
        Case(b"truncated.png", "error", _write(good[: len(good) // 2]), ""),
        Case(b"broken-crc.png", "error", _write(_broken_crc()), ""),
        Case(b"header-only.png", "error", _write(good[:33]), ""),
        Case(b"zero-size.png", "error", _write(png_with_header(0, 0)), ""),
        Case(b"tiff-bad-ifd.tif", "error", _write(_tiff_bad_ifd()), ""),
        Case(b"truncated.webp", "error", _write(encode(_photo(10), "WEBP")[:60]), ""),
        Case(b"gif-no-frames.gif", "error", _write(_gif_screen(16, 16)[:20]), ""),
        # -- decompression bombs and pixel counts claimed by a few bytes -----------------------------
        Case(b"bomb-header.png", "error", _write(png_with_header(65535, 65535)), "too many pixels"),
        Case(b"bomb-jpeg.jpg", "error", _write(_jpeg_with_dims(65000, 65000)), "too many pixels"),
        Case(b"bomb-gif.gif", "error", _write(_gif_screen(65535, 65535)), "too many pixels"),
        Case(b"bomb-bmp.bmp", "error", _write(_bmp_huge()), "too many pixels"),
        Case(b"bomb-ppm.ppm", "error", _write(b"P6 100000 100000 255\n" + b"\0" * 64), "too many pixels"),
        Case(b"ztxt-bomb.png", "any", _write(_ztxt_bomb())),
        # -- shapes that make the pyramid explode (few bytes, few pixels) ----------------------------
        Case(b"thin-8000x20.png", "ok", _write(encode(_photo(11, 8000, 20), "PNG"))),
        Case(b"thin-3000x2.png", "ok", _write(encode(_photo(12, 3000, 2), "PNG"))),
        Case(b"tall-20x8000.png", "ok", _write(encode(_photo(13, 20, 8000), "PNG"))),
        Case(b"strip-65535x1.png", "error", _write(png_with_header(65535, 1)), "max_windows"),
        Case(b"pixel-1x1.png", "ok", _write(encode(_photo(14, 1, 1), "PNG"))),
        # -- odd but valid images --------------------------------------------------------------------
        Case(b"anim-200-frames.gif", "ok", _write(_gif_frames(200))),
        Case(b"cmyk.jpg", "ok", _write(encode(Image.fromarray(_photo(15)).convert("CMYK"), "JPEG"))),
        Case(b"grey16.png", "ok", _write(encode(Image.fromarray(_photo(16)[..., 0].astype(np.uint16) * 257), "PNG"))),
        Case(b"exif-orientation-9.jpg", "ok", _write(_bad_orientation())),
        Case(b"exif-garbage.jpg", "any", _write(_exif(b"Exif\0\0" + os.urandom(200)))),
        Case(b"png-named.jpg", "ok", _write(good)),
        Case(b"polyglot-png-zip.png", "ok", _write(_polyglot())),
        # -- names -----------------------------------------------------------------------------------
        Case(b"caf\xe9-latin1-\xff.png", "ok", _write(good)),
        Case(b"new\nline.png", "ok", _write(good)),
        Case("\u202egnp.exe.png".encode(), "ok", _write(good)),  # right-to-left override
        Case(b"-rf --help.png", "ok", _write(good)),
        Case(b'comma, "quote".png', "ok", _write(good)),
        Case(b"tab\tand\x1b[31mescape.png", "ok", _write(good)),
        Case(b"long-" + b"x" * 240 + b".png", "ok", _write(good)),
        Case(b"UPPER.JPG", "ok", _write(jpeg)),
        Case(deep, "ok", _write(good)),
        Case(b".hidden.jpg", "skip", _write(good)),
        Case(b"README", "skip", _write(good)),  # no image extension
        # -- the file system: links, special files, giants (CLI only) --------------------------------
        Case(b"huge-sparse.jpg", "error", _sparse(2 << 30), "file too large", server=False),
        Case(b"fifo.jpg", "error", lambda p: os.mkfifo(p), "not a regular file (a FIFO)", server=False),
        Case(b"dev-zero.jpg", "error", _symlink(b"/dev/zero"), "not a regular file", server=False),
        Case(b"dangling.jpg", "error", _symlink(b"does-not-exist.jpg"), "broken symbolic link", server=False),
        Case(b"loop.jpg", "error", _symlink(b"loop.jpg"), "symbolic link loop", server=False),
        Case(b"link-to-good.png", "ok", _symlink(b"png-named.jpg"), server=False),
        Case(b"dir.jpg", "skip", lambda p: os.mkdir(p), server=False),
        Case(b"root-link.jpg", "skip", _symlink(b"/"), server=False),  # a link to a folder: not followed
    ]


def build(root: Path) -> tuple[list[Case], dict[bytes, bytes]]:
    """Write every case and the good images under `root`; returns (cases, good images by name)."""
    root.mkdir(parents=True, exist_ok=True)
    base = os.fsencode(root)
    goods = good_images()
    for name, data in goods.items():
        _write(data)(base + b"/" + name)
    corpus = cases()
    for case in corpus:
        path = base + b"/" + case.name
        os.makedirs(os.path.dirname(path), exist_ok=True)
        case.make(path)
    return corpus, goods


def upload_bytes(root: Path, case: Case) -> bytes:
    with open(os.fsencode(root) + b"/" + case.name, "rb") as f:
        return f.read()


def server_zip_cases() -> list[tuple[str, bytes, str]]:
    """Members of one uploaded zip: (member name, bytes, expect). Zip slip, a zip bomb member, a
    nested zip, a member named like a device; the server unpacks none of them outside its temp dir."""
    return [
        ("../../../../tmp/zip-slip.jpg", encode(_photo(20), "JPEG"), "ok"),
        ("/etc/absolute.jpg", encode(_photo(21), "JPEG"), "ok"),
        ("bomb-member.jpg", b"\0" * ((UPLOAD_MB + 2) << 20), "error"),
        ("nested.zip", _zip_bytes(), "error"),
        ("photos/dev/null.jpg", encode(_photo(22), "JPEG"), "ok"),
    ]


def zip_of(members: list[tuple[str, bytes, str]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data, _ in members:
            z.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()
