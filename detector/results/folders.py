"""Scanning many images: decoding in a thread pool ahead of inference, results streamed as they come.

Memory stays flat however many images there are: at most `prefetch` decoded images wait, within a
byte budget (detector.results.membudget) that the images being read, decoded and waiting share, and results
go to the writer one by one. `--resume` reads the JSONL written so far and skips every image already
there: a result whose file has the same content hash, or an error record that the file, unchanged,
would get again. A broken file is a result with an error, never a stop; so is an unexpected failure
while scanning one image: the batch never loses the other files' results.

Folders may mix photos and videos (detector.video): the photos are scanned first, through the
decoding pool, then each video, sampled frame by frame; `--resume` works per frame.
Every scanned record carries its exposure fields (detector.report.exposure), computed here while
the pixels are at hand.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from detector.errors import DetectorError, ImageLoadError
from detector.images import DEFAULT_MAX_FILE_BYTES, LoadedImage, is_image_path, load_image, refusal, sha256_capped
from detector.options import check_fields, check_int, option
from detector.report.exposure import add_exposure, image_thresholds
from detector.results.membudget import DEFAULT_DECODE_MEMORY, MemoryBudget, decode_cost
from detector.results.record import ScanResult, path_from_record
from detector.video.decode import Sampling, is_video_path
from detector.video.scan import scan_video

if TYPE_CHECKING:  # the detector is passed in; importing the pipeline here would slow the CLI's start
    from detector.api import Detector

MAX_WORKERS = 64


@dataclass(frozen=True)
class FolderOptions:
    """Which files of the named folders are scanned, and how many threads decode them."""

    glob: str | None = option(None, "Pattern for files in folders, e.g. '*.jpg'.")
    workers: int = option(2, "Decoding threads.", range=(1, MAX_WORKERS))

    def __post_init__(self) -> None:
        check_fields(self)


def is_wanted(rel: PurePath, glob: str | None) -> bool:
    """Whether a folder walk scans the file at `rel` (relative to the folder): no dot-names; the glob, or
    an image or video extension. The ray engine lists URI folders with the same rule."""
    if rel.name.startswith("."):
        return False
    if glob:
        return rel.match(glob) or fnmatch.fnmatch(rel.name, glob)
    return is_image_path(Path(rel.name)) or is_video_path(Path(rel.name))


#: A file named directly with one of these suffixes is a list of paths to scan, one a line.
PATH_LIST_SUFFIXES = (".txt", ".lst")


def is_path_list(path: Path) -> bool:
    return path.suffix.lower() in PATH_LIST_SUFFIXES and path.is_file()


def read_path_list(path: Path) -> list[str]:
    """The entries of a path list: one a line, empty lines skipped, relative ones taken from the list's
    folder (a list travels with its photos). Lines are bytes, so non-UTF-8 names survive; a line may be a
    URI (s3://...), which only the ray engine reads."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DetectorError(f"{path}: cannot read the path list: {e.strerror or e}") from None
    out = []
    for line in raw.splitlines():
        name = os.fsdecode(line.rstrip(b"\r"))
        if not name.strip():
            continue
        out.append(name if "://" in name or os.path.isabs(name) else os.path.normpath(os.path.join(path.parent, name)))
    return out


def list_images(inputs: Iterable[str | Path], glob: str | None = None) -> list[Path]:
    """Files named directly, and the image and video files found in folders (recursive, sorted, deduplicated).

    In folders: names with an image or video extension (or matching `glob`), whatever they are; a FIFO, a
    device or a broken link of such a name becomes an error record when scanned, never a hang. Names
    starting with a dot are skipped, and links to folders are not followed (no loops, no escaping the
    folder); links to files are. A path named directly is always kept (a bad one is an error result),
    except a `.txt`/`.lst` file: a list of paths (`read_path_list`), each taken as if named directly
    (a folder in the list is walked; a list in a list is not read).
    """
    out: list[Path] = []
    named: list[Path] = []
    for item in inputs:
        p = Path(item)
        named += [Path(name) for name in read_path_list(p)] if is_path_list(p) else [p]
    for p in named:
        if not p.is_dir():
            out.append(p)
            continue
        found: list[Path] = []
        for top, dirs, files in os.walk(p, followlinks=False):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            base = Path(top)
            found += [base / f for f in files if is_wanted((base / f).relative_to(p), glob)]
        out += sorted(found)
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


@dataclass
class Done:
    """What a JSONL output already holds: image records by path, frame records by video and frame,
    and the closing record of each finished video."""

    images: dict[str, dict] = field(default_factory=dict)
    frames: dict[str, dict[int, dict]] = field(default_factory=dict)
    videos: dict[str, dict] = field(default_factory=dict)


def done_in_jsonl(path: Path) -> Done:
    """The records already in a JSONL output (the last one wins); unparsable lines are ignored."""
    done = Done()
    if not path.is_file():
        return done
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
                name = path_from_record(rec)
                kind = rec.get("record")
                if kind == "video":
                    done.videos[name] = rec
                elif kind is not None:
                    continue  # appearances are rebuilt from the frames
                elif rec.get("frame") is not None:
                    done.frames.setdefault(name, {})[int(rec["frame"])] = rec
                else:
                    done.images[name] = rec
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                continue
    return done


def already_done(p: Path, rec: dict, max_file_bytes: int) -> bool:
    """Whether scanning `p` again would only repeat `rec`: the same content (by hash), or for an
    error record of a file that was never read, the same refusal from stat."""
    sha = rec.get("sha256") or ""
    if sha:
        return sha256_capped(p, max_file_bytes) == sha
    errors = rec.get("errors") or []
    return bool(errors) and refusal(p, max_file_bytes) == errors[0]


def _load(path: Path, max_pixels: int, max_file_bytes: int) -> tuple[LoadedImage | None, str, str]:
    try:
        img = load_image(path, max_pixels, max_file_bytes=max_file_bytes)
        return img, img.sha256, ""
    except ImageLoadError as e:
        return None, e.sha256, e.reason
    except OSError as e:  # unreadable after the checks (permissions, vanished): still a value
        return None, "", str(e)


def iter_loaded(
    paths: list[Path],
    max_pixels: int,
    workers: int = 2,
    prefetch: int = 4,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    budget: MemoryBudget | None = None,
) -> Iterator[tuple[Path, LoadedImage | None, str, str]]:
    """(path, image or None, sha256, error) in order, decoded by a thread pool up to `prefetch` ahead.

    Each image reserves its decode cost (stat + header) in `budget` before it is submitted and gives
    it back once the caller is done with it; the reservations are taken here, in order, so a worker
    never waits on the budget and the order cannot deadlock."""
    budget = budget or MemoryBudget(DEFAULT_DECODE_MEMORY)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[Path, Future, int]] = deque()
        it = iter(paths)
        nxt = next(it, None)
        while pending or nxt is not None:
            while nxt is not None and len(pending) < prefetch:
                cost = decode_cost(nxt, max_file_bytes, max_pixels)
                if not budget.try_acquire(cost):
                    break  # wait for the scan to give memory back
                pending.append((nxt, pool.submit(_load, nxt, max_pixels, max_file_bytes), cost))
                nxt = next(it, None)
            p, fut, cost = pending.popleft()
            try:
                img, sha, err = fut.result()
                yield p, img, sha, err
            finally:
                budget.release(cost)


@dataclass
class BatchSummary:
    images: int = 0
    skipped_done: int = 0
    errors: int = 0
    with_logo: int = 0
    per_label: Counter = field(default_factory=Counter)
    videos: int = 0
    frames: int = 0  # sampled video frames scanned (each also counts in `images`)

    def add(self, r: ScanResult) -> None:
        self.images += 1
        if r.errors:
            self.errors += 1
            return
        if r.has_logo:
            self.with_logo += 1
        for label in r.labels:
            self.per_label[label] += 1

    def merge(self, other: BatchSummary) -> None:
        """Add another part's counts (the ray engine's videos, scanned on the driver after the images)."""
        for f in fields(self):
            if f.name == "per_label":
                self.per_label.update(other.per_label)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def scan_one(
    detector: Detector, p: Path, img: LoadedImage | None, sha: str, err: str, thresholds: dict[str, float]
) -> ScanResult:
    """One decoded (or refused) file's record: the scan with exposure, or an error record; never raises,
    so one file cannot cost a batch the others' results. Every engine scans a file with this."""
    if img is None:
        r = detector.error_result(str(p), err)
        r.sha256 = sha
        return r
    try:
        return add_exposure(detector.scan_loaded(img, path=str(p)), img.pixels, thresholds)
    except DetectorError as e:  # over the work budget, a model failure: a record, and the batch goes on
        r = detector.error_result(str(p), str(e))
    except Exception as e:  # a bug must not cost the other files their results
        r = detector.error_result(str(p), f"internal error: {e.__class__.__name__}: {e}")
    r.sha256 = sha
    return r


def scan_many(
    detector: Detector,
    paths: list[Path],
    on_result: Callable[[ScanResult, object], None],
    resume_from: Path | None = None,
    workers: int = 2,
    progress: bool = True,
    sampling: Sampling | None = None,
    on_record: Callable[[dict], None] | None = None,
) -> BatchSummary:
    """Scan `paths`, calling on_result(result, pixels) for each image and sampled video frame, and
    on_record(record) for each video's appearance and closing records; returns the summary.

    Photos are scanned in order first, then the videos (sampled by `sampling`, default one frame a
    second)."""
    workers = check_int("workers", workers, 1, MAX_WORKERS)
    summary = BatchSummary()
    done = done_in_jsonl(resume_from) if resume_from else Done()
    videos = [p for p in paths if is_video_path(p)]
    todo = [p for p in paths if not is_video_path(p)]
    if done.images:
        kept = []
        for p in todo:
            rec = done.images.get(str(p))
            if rec is not None and already_done(p, rec, detector.max_file_bytes):
                summary.skipped_done += 1
            else:
                kept.append(p)
        todo = kept
    _scan_images(detector, todo, on_result, workers, progress, summary)
    for v in videos:
        _scan_one_video(detector, v, sampling or Sampling(), on_result, on_record, done, summary)
    return summary


def _scan_one_video(
    detector: Detector,
    path: Path,
    sampling: Sampling,
    on_result: Callable[[ScanResult, object], None],
    on_record: Callable[[dict], None] | None,
    done: Done,
    summary: BatchSummary,
) -> None:
    closing = done.videos.get(str(path)) or done.images.get(str(path))  # finished, or an error record
    if closing is not None and already_done(path, closing, 2**62):
        summary.skipped_done += 1
        return

    def counted(r: ScanResult, pixels: object) -> None:
        summary.add(r)
        summary.frames += r.frame is not None
        on_result(r, pixels)

    summary.videos += 1
    scan_video(detector, path, sampling, counted, on_record or (lambda rec: None), done.frames.get(str(path)))


def _scan_images(
    detector: Detector,
    todo: list[Path],
    on_result: Callable[[ScanResult, object], None],
    workers: int,
    progress: bool,
    summary: BatchSummary,
) -> None:
    thresholds = image_thresholds(detector.meta)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="img", desc="scan", disable=None, smoothing=0.1)
    try:
        for p, img, sha, err in iter_loaded(todo, detector.max_pixels, workers, max_file_bytes=detector.max_file_bytes):
            r = scan_one(detector, p, img, sha, err, thresholds)
            summary.add(r)
            on_result(r, img.pixels if img is not None else None)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
