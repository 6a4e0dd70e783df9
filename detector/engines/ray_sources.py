"""What a `--engine ray` scan reads: local files, and objects behind URIs that pyarrow's filesystems open.

A SOURCE is a folder or file (listed as the local engine lists them, `list_images`), a `.txt`/`.lst`
list of paths and URIs, or a URI: `file:///data/photos`, `s3://bucket/photos/`, `gs://bucket/photos/`
(pyarrow's S3 and GCS filesystems, with their usual credentials). A URI folder is listed recursively
on the driver with the same rules as a local one (image extensions or `--glob`, no dot-names).

Actors copy a remote object to a local spool file (within the size cap, known from the listing) and
decode it with the library's own `load_image`, so a remote photo gets the same checks, hash and
record as a local one; the record's `path` is the URI.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from detector.errors import DetectorError
from detector.results.folders import is_path_list, is_wanted, list_images, read_path_list
from detector.video.decode import is_video_path

#: URI schemes read through pyarrow.fs (file:// is the one the tests use; s3:// and gs:// on clusters).
URI_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/+(.*)$", re.DOTALL)
COPY_CHUNK = 1 << 20


def as_uri(item: str | Path) -> str | None:
    """The URI an input names, or None for a local path.

    The CLI hands inputs over as `Path`s, which fold `s3://b/k` into `s3:/b/k`; the slashes are put back
    here (`file:` gets its third, for the absolute path)."""
    found = _URI.match(str(item))
    if not found or found.group(1).lower() not in URI_SCHEMES:
        return None
    scheme, rest = found.group(1).lower(), found.group(2)
    return f"{scheme}:///{rest}" if scheme == "file" else f"{scheme}://{rest}"


@dataclass(frozen=True)
class Item:
    """One input: the `path` its record carries, and for a remote object where to read it."""

    name: str
    root: int = -1  # index into Listing.roots; -1: a local path
    fs_path: str = ""
    size: int = -1  # bytes, from the listing (-1: unknown)


@dataclass
class Listing:
    """Every input of a job: images for the actors, local videos for the driver, and the URIs whose
    filesystems the actors open (`roots`)."""

    items: list[Item] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    remote_videos: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)


def list_sources(inputs: list[Path] | list[str], glob: str | None = None) -> Listing:
    """Expand folders, path lists and URIs into items (deduplicated, in order); errors are one line."""
    named: list[str] = []
    for item in inputs:
        p = Path(item)
        named += read_path_list(p) if as_uri(item) is None and is_path_list(p) else [str(item)]
    listing, seen = Listing(), set()
    local: list[str] = []
    for name in named + [""]:  # "" flushes the last run of local names
        uri = as_uri(name) if name else None
        if uri is None and name:
            local.append(name)
            continue
        for p in list_images(local, glob):
            _add(listing, seen, Item(str(p)), is_video_path(p))
        local = []
        if uri is not None:
            for it in _list_uri(uri, len(listing.roots), glob):
                _add(listing, seen, it, is_video_path(Path(it.fs_path)))
            listing.roots.append(uri)
    return listing


def _add(listing: Listing, seen: set[str], item: Item, video: bool) -> None:
    if item.name in seen:
        return
    seen.add(item.name)
    if not video:
        listing.items.append(item)
    elif item.root < 0:
        listing.videos.append(Path(item.name))
    else:
        listing.remote_videos.append(item.name)


def open_uri(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path in it) for a URI; a bad or unreachable one is one line."""
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... with long texts
        raise DetectorError(f"{uri}: cannot open ({_first_line(e)})") from None


def _list_uri(uri: str, root: int, glob: str | None) -> list[Item]:
    """A URI's files: itself if it is a file (or missing: an error record then), else its folder's
    images, recursively, sorted, with the folder walk's rules."""
    import pyarrow.fs as pafs

    fs, base = open_uri(uri)
    scheme = uri.split(":", 1)[0]
    try:
        info = fs.get_file_info(base)
        if info.type != pafs.FileType.Directory:
            return [Item(uri, root, base, info.size if info.type == pafs.FileType.File else -1)]
        found = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    except Exception as e:
        raise DetectorError(f"{uri}: cannot list ({_first_line(e)})") from None
    items = []
    for f in found:
        rel = PurePosixPath(f.path).relative_to(PurePosixPath(base))
        if f.type == pafs.FileType.File and not any(part.startswith(".") for part in rel.parts[:-1]):
            if is_wanted(rel, glob):
                items.append(Item(f"{scheme}://{f.path}", root, f.path, f.size))
    return sorted(items, key=lambda it: it.fs_path)


def fetch(fs: Any, item: Item, dest: Path, max_file_bytes: int) -> str:
    """Copy a remote object to `dest` for `load_image`; "" or why it cannot be read.

    An object over the cap (by its listed size) becomes a sparse file of that size, never read, which
    `load_image` then refuses from stat with its usual message; one that turns out larger while it is
    copied stops one byte past the cap, with the same result."""
    try:
        if item.size > max_file_bytes:
            with open(dest, "wb") as out:
                out.truncate(item.size)
            return ""
        with fs.open_input_stream(item.fs_path) as src, open(dest, "wb") as out:
            left = max_file_bytes + 1
            while left > 0 and (chunk := src.read(min(COPY_CHUNK, left))):
                out.write(chunk)
                left -= len(chunk)
        return ""
    except Exception as e:
        dest.unlink(missing_ok=True)
        return f"cannot read: {_first_line(e)}"


def _first_line(e: BaseException) -> str:
    return ((str(e).splitlines() or [e.__class__.__name__])[0])[:200]


def spool_name(index: int, item: Item) -> str:
    """A local file name for a remote object: unique per input, keeping its extension."""
    return f"{index:012d}{os.path.splitext(item.fs_path)[1][:16]}"
