"""Scanning many images: decoding in a thread pool ahead of inference, results streamed as they come.

Memory stays flat however many images there are: at most `prefetch` decoded images wait in memory, and
results go to the writer one by one. `--resume` reads the JSONL written so far and skips every image
whose path and content hash are already there; a broken file is a result with an error, never a stop.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from detector.data import file_sha256
from detector.detector import Detector
from detector.errors import DetectorError, ImageLoadError
from detector.images import LoadedImage, is_image_path, load_image
from detector.results import ScanResult


def list_images(inputs: Iterable[str | Path], glob: str | None = None) -> list[Path]:
    """Files named directly, and image files found recursively in folders (sorted, deduplicated)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = p.rglob(glob) if glob else p.rglob("*")
            out += sorted(f for f in found if f.is_file() and (glob or is_image_path(f)) and not f.name.startswith("."))
        else:
            out.append(p)  # a missing or bad file becomes an error result, not a crash
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def done_in_jsonl(path: Path) -> dict[str, str]:
    """{path: sha256} of the images already in a JSONL output (a torn last line is ignored)."""
    done: dict[str, str] = {}
    if not path.is_file():
        return done
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
                done[rec["path"]] = rec.get("sha256", "")
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return done


def _load(path: Path, max_pixels: int) -> tuple[LoadedImage | None, str, str]:
    try:
        img = load_image(path, max_pixels)
        return img, img.sha256, ""
    except ImageLoadError as e:
        return None, "", e.reason
    except OSError as e:  # unreadable after the decode (permissions, vanished): still a value
        return None, "", str(e)


def iter_loaded(paths: list[Path], max_pixels: int, workers: int = 2, prefetch: int = 4) -> Iterator:
    """(path, image or None, sha256, error) in order, decoded by a thread pool up to `prefetch` ahead."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[Path, Future]] = deque()
        it = iter(paths)
        for p in it:
            pending.append((p, pool.submit(_load, p, max_pixels)))
            if len(pending) >= prefetch:
                break
        while pending:
            p, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_load, nxt, max_pixels)))
            img, sha, err = fut.result()
            yield p, img, sha, err


@dataclass
class BatchSummary:
    images: int = 0
    skipped_done: int = 0
    errors: int = 0
    with_logo: int = 0
    per_label: Counter = field(default_factory=Counter)

    def add(self, r: ScanResult) -> None:
        self.images += 1
        if r.errors:
            self.errors += 1
            return
        if r.has_logo:
            self.with_logo += 1
        for label in r.labels:
            self.per_label[label] += 1


def scan_many(
    detector: Detector,
    paths: list[Path],
    on_result: Callable[[ScanResult, object], None],
    resume_from: Path | None = None,
    workers: int = 2,
    progress: bool = True,
) -> BatchSummary:
    """Scan `paths` in order, calling on_result(result, pixels) for each; returns the summary."""
    summary = BatchSummary()
    done = done_in_jsonl(resume_from) if resume_from else {}
    todo = paths
    if done:
        todo = []
        for p in paths:
            if str(p) in done and p.is_file() and done[str(p)] == file_sha256(p):
                summary.skipped_done += 1
            else:
                todo.append(p)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="img", desc="scan", disable=None, smoothing=0.1)
    try:
        for p, img, sha, err in iter_loaded(todo, detector.max_pixels, workers):
            if img is None:
                r = detector.error_result(str(p), err)
            else:
                try:
                    r = detector.scan_loaded(img, path=str(p))
                except DetectorError as e:
                    r = detector.error_result(str(p), str(e))
                    r.sha256 = sha
            summary.add(r)
            on_result(r, img.pixels if img is not None else None)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return summary
