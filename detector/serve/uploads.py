"""Request bodies into files: multipart streamed to a private temp dir, zips unpacked, every size capped.

Starlette's own form parser spools big uploads to the system temp dir and only learns a file's size
after it has it all; this reader writes each part straight into the request's own `mkdtemp` dir (0700,
removed when the request ends, whatever happens) and stops at the first byte over the cap. Client file
names are only ever displayed: on disk the parts are `upload-0000`, `upload-0001`, ...
"""

from __future__ import annotations

import codecs
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from detector.images import is_image_path
from detector.serve.errors import ApiError

MAX_FIELDS = 50
MAX_FIELD_BYTES = 64 * 1024
#: After a cap is hit, read (and drop) at most this much more of the body so that the client, still
#: sending, gets to read the 413 instead of a reset connection.
DRAIN_BYTES = 64 * 1024 * 1024
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/x-zip")


@dataclass
class Upload:
    name: str  # the client's name for it, for results and messages only
    path: Path | None  # None when `error` says why it has no bytes
    size: int = 0
    content_type: str = ""
    error: str = ""  # a per-file problem found while unpacking (batch: becomes an error record)


@dataclass
class Received:
    files: list[Upload] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


def make_request_dir() -> Path:
    """A new private directory (mode 0700, under $TMPDIR) for one request's files."""
    return Path(tempfile.mkdtemp(prefix="detect-serve-"))


@contextmanager
def request_dir() -> Iterator[Path]:
    """A private directory for one request's files, removed on exit however the request ends."""
    path = make_request_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def display_name(raw: str, fallback: str) -> str:
    """The last path component of a client-sent name, without control characters, at most 200 chars."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:200] or fallback


def _too_large(what: str, limit: int) -> ApiError:
    return ApiError(413, "too_large", f"{what} is larger than the server's limit of {limit / 1048576:g} MB")


class _MultipartSink:
    """python-multipart callbacks that write file parts to disk and keep small text fields."""

    def __init__(self, workdir: Path, max_file_bytes: int, max_files: int, charset: str) -> None:
        self.workdir, self.max_file_bytes, self.max_files, self.charset = workdir, max_file_bytes, max_files, charset
        self.received = Received()
        self._headers: dict[bytes, bytes] = {}
        self._hname = b""
        self._hvalue = b""
        self._file: BinaryIO | None = None
        self._upload: Upload | None = None
        self._field_name = ""
        self._field_data = bytearray()
        self._unnamed = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def _decode(self, b: bytes) -> str:
        try:
            return b.decode(self.charset)
        except (UnicodeDecodeError, LookupError):
            return b.decode("latin-1")

    def on_part_begin(self) -> None:
        self._headers, self._file, self._upload = {}, None, None
        self._field_name, self._field_data = "", bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._hname.lower()] = self._hvalue
        self._hname, self._hvalue = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._field_name = self._decode(options.get(b"name", b""))
        if b"filename" not in options:
            if len(self.received.fields) >= MAX_FIELDS:
                raise ApiError(400, "bad_request", f"more than {MAX_FIELDS} form fields")
            return
        index = len(self.received.files)
        if index >= self.max_files:
            raise ApiError(413, "too_many_files", f"more than {self.max_files} files in one request")
        path = self.workdir / f"upload-{index:04d}"
        ctype = self._decode(self._headers.get(b"content-type", b"")).split(";")[0].strip().lower()
        raw_name = self._decode(options[b"filename"])
        self._unnamed = not raw_name
        self._upload = Upload(display_name(raw_name, path.name), path, 0, ctype)
        self._file = open(path, "wb")  # noqa: SIM115 - closed in on_part_end or close()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if self._upload is None:
            if len(self._field_data) + n > MAX_FIELD_BYTES:
                raise ApiError(400, "bad_request", f"form field '{self._field_name}' is too long")
            self._field_data += data[start:end]
            return
        self._upload.size += n
        if self._upload.size > self.max_file_bytes:
            raise _too_large(self._upload.name, self.max_file_bytes)
        assert self._file is not None
        self._file.write(data[start:end])  # local disk, page cache: microseconds, fine on the event loop

    def on_part_end(self) -> None:
        if self._upload is None:
            self.received.fields[self._field_name] = self._decode(bytes(self._field_data))
            return
        self.close()
        if self._upload.size == 0 and self._unnamed:
            self._upload = None  # a form's empty file input: no file was chosen
            return
        self.received.files.append(self._upload)
        self._upload = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def receive_multipart(request: Request, workdir: Path, max_file_bytes: int, max_files: int) -> Received:
    """Stream a multipart/form-data body into `workdir`: file parts as files, other parts as fields."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise ApiError(
            415, "unsupported_media_type", "send the images as multipart/form-data, one or more parts named 'files'"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "bad_request", "multipart/form-data without a boundary")
    limit = max_files * max_file_bytes + 1024 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large("the request body", limit)
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    sink = _MultipartSink(workdir, max_file_bytes, max_files, charset)
    parser = MultipartParser(boundary, sink.callbacks())
    stream = request.stream()
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except ApiError as e:
        if e.status == 413:
            await _drain(stream)
        raise
    except FormParserError as e:
        raise ApiError(400, "bad_request", f"malformed multipart body: {e}") from None
    finally:
        sink.close()
    return sink.received


async def _drain(stream) -> None:
    """Read and drop the rest of the body, up to DRAIN_BYTES, so the client can read our 413."""
    seen = 0
    try:
        async for chunk in stream:
            seen += len(chunk)
            if seen > DRAIN_BYTES:
                return
    except Exception:  # the client went away: nothing to drain
        return


def is_zip(upload: Upload) -> bool:
    """A zip by its content type or name; by its first bytes only when its name does not say it is an
    image (a zip named photo.jpg is scanned as the image it claims to be, and fails as one)."""
    if upload.path is None:
        return False
    if upload.content_type in ZIP_TYPES or upload.name.lower().endswith(".zip"):
        return True
    if is_image_path(Path(upload.name)):
        return False
    with open(upload.path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def unpack_zip(upload: Upload, workdir: Path, max_member_bytes: int, max_files: int, first_index: int) -> list[Upload]:
    """The images inside a zip, as uploads (files `zip-0000`...). A member too big or encrypted becomes
    an upload with `error` set, so the batch reports it and goes on; the zip itself being unreadable or
    holding more than `max_files` members fails the request. Sizes are enforced while decompressing,
    not trusted from the zip's headers (a zip bomb lies there)."""
    assert upload.path is not None
    try:
        archive = zipfile.ZipFile(upload.path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ApiError(415, "not_a_zip", f"{upload.name}: not a readable zip file ({e})") from None
    out: list[Upload] = []
    with archive:
        members = [
            i
            for i in archive.infolist()
            if not i.is_dir()
            and not PurePosixPath(i.filename).name.startswith(".")
            and not i.filename.startswith("__MACOSX/")
        ]
        if first_index + len(members) > max_files:
            raise ApiError(413, "too_many_files", f"{upload.name}: more than {max_files} files in one request")
        for k, info in enumerate(members):
            name = "".join(ch for ch in info.filename if ch.isprintable())[:300] or f"member-{k}"
            if info.flag_bits & 0x1:
                out.append(Upload(name, None, info.file_size, error="encrypted zip member"))
                continue
            if info.file_size > max_member_bytes:
                out.append(Upload(name, None, info.file_size, error=_too_large(name, max_member_bytes).message))
                continue
            path = workdir / f"zip-{first_index + k:04d}"
            size, error = 0, ""
            try:
                with archive.open(info) as src, open(path, "wb") as dst:
                    while chunk := src.read(1024 * 1024):
                        size += len(chunk)
                        if size > max_member_bytes:
                            error = _too_large(name, max_member_bytes).message
                            break
                        dst.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as e:
                error = f"cannot unpack: {e}"
            if error:
                path.unlink(missing_ok=True)
                out.append(Upload(name, None, size, error=error))
            else:
                out.append(Upload(name, path, size))
    return out
