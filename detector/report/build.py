"""From scan records to a Report: one streaming pass, fixed memory, the tables a brand manager reads.

Records come from `detect scan --format jsonl` (schema `logo-detector/scan@1` or `@2`): image
records, video frame records (`frame`, `time_s`), and a video's `appearance` and `video` records.
Each is looked at once and dropped; what is kept per brand is counts, sums, fixed histograms, grids
and the gallery's few candidates (detector.report.stats), so memory does not grow with the input.

What counts:
- a *photo* is an image record without errors, a *frame* a video frame record without errors;
- a brand is *in* a photo or frame when it is among the record's `labels` (the image verdict) or one
  of its boxes carries it;
- a *detection* is a box; share of voice = a brand's detections / all brands' detections;
- exposure seconds and appearances come from the appearance records; share of screen time =
  exposure seconds / the total duration of the videos (their `video` records).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.errors import DetectorError
from detector.options import check_int, check_number
from detector.report.exposure import ZONES, exposure_fields
from detector.report.stats import Grid, Histogram, TopN
from detector.results.record import ScanResult, path_from_record

#: Version of summary.json (README, "Report files").
REPORT_SCHEMA = "logo-detector/report@1"
#: Error records listed one by one (all are counted).
MAX_LISTED_ERRORS = 1000
#: Distinct time keys kept for "prominence over time" (more are counted in `dropped_time_keys`).
MAX_TIME_KEYS = 20_000
#: Appearances listed for the timeline (all count for exposure seconds).
MAX_LISTED_APPEARANCES = 5_000
PERCENTILES = (10, 50, 90)


class ReportInputError(DetectorError):
    """A results file the report cannot read at all (missing, a folder)."""


@dataclass
class BrandStats:
    """Everything kept about one brand while the records stream by."""

    label: str
    gallery: int
    photos: int = 0
    frames: int = 0
    detections: int = 0
    area: Histogram = field(default_factory=lambda: Histogram(1e-6, 1.0, 1200, log=True))
    prominence: Histogram = field(default_factory=lambda: Histogram(0.0, 1.0, 1000))
    box_scores: Histogram = field(default_factory=lambda: Histogram(0.0, 1.0, 1000))
    image_scores: Histogram = field(default_factory=lambda: Histogram(0.0, 1.0, 200))
    zones: Counter = field(default_factory=Counter)
    fine: Grid = field(default_factory=lambda: Grid(24, 32))
    threshold: float | None = None
    exposure_s: float = 0.0
    appearances: int = 0
    top: TopN = field(init=False)
    above: TopN = field(init=False)  # borderline: just above the threshold (key: -distance)
    below: TopN = field(init=False)  # ... and just below

    def __post_init__(self) -> None:
        self.top, self.above, self.below = TopN(self.gallery), TopN(self.gallery), TopN(self.gallery)


@dataclass
class BrandRow:
    """One line of the per-brand table (summary.csv)."""

    brand: str
    photos: int
    photo_share: float | None
    frames: int
    frame_share: float | None
    detections: int
    share_of_voice: float | None
    area_share_mean: float | None
    area_share_p10: float | None
    area_share_p50: float | None
    area_share_p90: float | None
    prominence_mean: float | None
    prominence_p10: float | None
    prominence_p50: float | None
    prominence_p90: float | None
    score_mean: float | None
    threshold: float | None
    appearances: int
    exposure_s: float
    screen_share: float | None
    zones: dict[str, int]


@dataclass
class Report:
    """The report as a value: `brands` (the table), totals, errors, and what the plots and the gallery
    need. `write(dir)` writes index.html, summary.csv and summary.json; `write_html(dir)` the page.

    Example:
        >>> from detector.report import build
        >>> rep = build(["results.jsonl"])  # doctest: +SKIP
        >>> [(b.brand, b.photos, b.share_of_voice) for b in rep.brands]  # doctest: +SKIP
        [('demo-logo', 71, 1.0)]
        >>> rep.write("report/")  # doctest: +SKIP
    """

    brands: list[BrandRow]
    totals: dict[str, Any]
    errors: list[dict[str, str]]
    error_reasons: dict[str, int]
    stats: dict[str, BrandStats]
    time_series: dict[str, dict[Any, list[float]]]  # brand -> key -> [prominence sum, detections, items with it]
    time_items: dict[Any, int]  # key -> photos/frames with that key
    time_label: str | None
    appearances: list[dict[str, Any]]
    videos: dict[str, dict[str, Any]]
    sources: list[str]
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        """summary.json: the table, the totals, the gallery's picks and the errors (no pixels)."""
        from detector.report.files import report_dict

        return report_dict(self)

    def write(self, out_dir: str | Path, images: str | Path | None = None) -> dict[str, Path]:
        """index.html, summary.csv and summary.json into out_dir; returns their paths."""
        from detector.report.files import write_all

        return write_all(self, Path(out_dir), Path(images) if images else None)

    def write_html(self, out_dir: str | Path, images: str | Path | None = None) -> Path:
        """The page alone (assets inline: it opens offline); gallery crops are read from `images`."""
        from detector.report.html import write_page

        return write_page(self, Path(out_dir), Path(images) if images else None)


Source = str | Path | dict[str, Any] | ScanResult


def iter_records(sources: Iterable[Source] | str | Path, problems: list[str] | None = None) -> Iterator[dict]:
    """Records from JSONL files (streamed line by line) and/or dicts and ScanResults.

    A line that is not a JSON object is noted in `problems` (file and line number) and skipped; a
    file that cannot be opened is noted and skipped, so one bad input never loses the others."""
    problems = [] if problems is None else problems
    if isinstance(sources, (str, Path)):
        sources = [sources]
    for src in sources:
        if isinstance(src, ScanResult):
            yield src.as_dict()
        elif isinstance(src, dict):
            yield src
        else:
            yield from _read_jsonl(Path(src), problems)


def _read_jsonl(path: Path, problems: list[str]) -> Iterator[dict]:
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    except OSError as e:
        problems.append(f"{path}: cannot be read ({e.strerror or e})")
        return
    bad = 0
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                rec = None
            if not isinstance(rec, dict):
                bad += 1
                if bad <= 20:
                    problems.append(f"{path}:{n}: not a JSON record (skipped)")
                continue
            yield rec
    if bad > 20:
        problems.append(f"{path}: {bad - 20} more lines that are not JSON records (skipped)")


#: The most detections per brand the gallery may show (top-N and borderline each).
MAX_GALLERY = 200


def build(
    results: Iterable[Source] | str | Path,
    by: str | None = None,
    gallery: int = 8,
    default_threshold: float = 0.5,
) -> Report:
    """Stream scan records (JSONL paths, dicts or ScanResults) into a Report.

    `by` names what "over time" means for photos: a record field (`time_s`, or a dotted path such as
    `meta.date`), `path:REGEX` (the first group of a regex on the path, e.g. `path:(\\d{4}-\\d{2})`),
    or `exif:date` (the photo's EXIF DateTimeOriginal day, read from the file's header). Video frames
    use `time_s` when `by` is not given. `gallery` is N for the top-N and the borderline lists;
    `default_threshold` is the image threshold of brands whose records do not carry theirs (scan@1).

    Example:
        >>> rep = build([{"path": "a.jpg", "width": 100, "height": 100, "labels": ["acme"],
        ...     "scores": {"acme": 0.9}, "errors": [],
        ...     "boxes": [{"label": "acme", "score": 0.9, "x1": 0, "y1": 0, "x2": 50, "y2": 50}]}])
        >>> rep.brands[0].brand, rep.brands[0].photos, rep.brands[0].area_share_mean
        ('acme', 1, 0.25)
    """
    gallery = check_int("gallery", gallery, 0, MAX_GALLERY)
    default_threshold = check_number("threshold", default_threshold, 0.0, 1.0)
    if not isinstance(results, (str, Path)):
        results = list(results)
        paths = [p for p in results if isinstance(p, (str, Path))]
        if paths and len(paths) == len(results) and not any(Path(p).is_file() for p in paths):
            raise DetectorError(f"no results file can be read: {', '.join(map(str, paths))}")
    acc = _Accumulator(by, gallery, default_threshold)
    sources: list[str] = []

    def named(items: Iterable[Source] | str | Path) -> Iterator[Source]:
        for s in [items] if isinstance(items, (str, Path)) else items:
            if isinstance(s, (str, Path)):
                sources.append(str(s))
            yield s

    for rec in iter_records(named(results), acc.problems):
        try:
            acc.add(rec)
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            acc.malformed(rec, e)
    return acc.finish(sources)


class _Accumulator:
    def __init__(self, by: str | None, gallery: int, default_threshold: float) -> None:
        from detector.report.timekeys import time_key_function

        self.gallery, self.default_threshold = gallery, default_threshold
        self.key_of = time_key_function(by)
        self.time_label = by
        self.brands: dict[str, BrandStats] = {}
        self.totals = Counter()
        self.errors: list[dict[str, str]] = []
        self.reasons: Counter = Counter()
        self.series: dict[str, dict[Any, list[float]]] = {}
        self.time_items: Counter = Counter()
        self.dropped_keys = 0
        self.appearances: list[dict[str, Any]] = []
        self.seen_appearances: set[tuple] = set()
        self.videos: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []

    def brand(self, label: str) -> BrandStats:
        b = self.brands.get(label)
        if b is None:
            b = self.brands[label] = BrandStats(label, self.gallery)
        return b

    def add(self, rec: dict[str, Any]) -> None:
        kind = rec.get("record")
        self.totals["records"] += 1
        if kind == "appearance":
            self._appearance(rec)
        elif kind == "video":
            self.videos[path_from_record(rec)] = {
                k: rec.get(k) for k in ("duration_s", "fps", "every_s", "samples", "sha256")
            }
        elif kind is None:
            self._scan(rec)
        else:
            self.totals["other_records"] += 1

    def malformed(self, rec: Any, e: Exception) -> None:
        self.totals["malformed"] += 1
        if self.totals["malformed"] <= 20:
            name = rec.get("path", "?") if isinstance(rec, dict) else "?"
            self.problems.append(f"{name}: a record with unexpected fields ({e.__class__.__name__}: {e}); skipped")

    def _appearance(self, rec: dict[str, Any]) -> None:
        path = path_from_record(rec)
        key = (path, rec["label"], float(rec["start_s"]))
        if key in self.seen_appearances:  # the same video scanned again into the same file
            return
        self.seen_appearances.add(key)
        b = self.brand(str(rec["label"]))
        b.exposure_s += float(rec.get("duration_s") or 0.0)
        b.appearances += 1
        if len(self.appearances) < MAX_LISTED_APPEARANCES:
            self.appearances.append(
                {
                    "path": path,
                    "label": b.label,
                    "start_s": float(rec["start_s"]),
                    "end_s": float(rec["end_s"]),
                    "duration_s": float(rec.get("duration_s") or 0.0),
                    "peak_prominence": float(rec.get("peak_prominence") or 0.0),
                }
            )

    def _scan(self, rec: dict[str, Any]) -> None:
        path = path_from_record(rec)
        errors = rec.get("errors") or []
        if errors:
            return self._error(path, errors)
        is_frame = rec.get("frame") is not None
        unit = "frames" if is_frame else "photos"
        self.totals[unit] += 1
        w, h = int(rec.get("width") or 0), int(rec.get("height") or 0)
        boxes = rec.get("boxes") or []
        exposure = rec.get("exposure")
        if exposure is None or len(exposure) != len(boxes):  # scan@1: compute what needs no pixels
            exposure = [exposure_fields(_xyxy(b), float(b["score"]), w, h, None) for b in boxes]
        item = {"path": path, "width": w, "height": h}
        if is_frame:
            item |= {"frame": int(rec["frame"]), "time_s": float(rec.get("time_s") or 0.0)}
        key = self._time_key(rec, path)
        for label in set(rec.get("labels") or []) | {b["label"] for b in boxes}:
            b = self.brand(label)
            setattr(b, unit, getattr(b, unit) + 1)
            if key is not None:
                self.series.setdefault(label, {}).setdefault(key, [0.0, 0, 0])[2] += 1
        best = self._boxes(boxes, exposure, item, key)
        thresholds = rec.get("thresholds") or {}
        for label, score in (rec.get("scores") or {}).items():  # every class the model scored, found or not
            b = self.brand(label)
            if thresholds.get(label) is not None:
                b.threshold = float(thresholds[label])
            b.image_scores.add(float(score))
            self._borderline(b, float(score), item, best.get(label))

    def _error(self, path: str, errors: list) -> None:
        self.totals["errors"] += 1
        reason = str(errors[0])
        if len(self.reasons) < 500 or reason in self.reasons:
            self.reasons[reason] += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append({"path": path, "error": "; ".join(map(str, errors))})

    def _time_key(self, rec: dict[str, Any], path: str) -> str | None:
        """The record's period (`by`), or None; new periods beyond MAX_TIME_KEYS are dropped (counted)."""
        key = self.key_of(rec, path)
        if key is None:
            return None
        if key in self.time_items or len(self.time_items) < MAX_TIME_KEYS:
            self.time_items[key] += 1
            return key
        self.dropped_keys += 1
        return None

    def _boxes(self, boxes: list, exposure: list, item: dict, key: str | None) -> dict[str, tuple[dict, dict]]:
        """Each box into its brand's statistics; the best box of each brand (for the borderline gallery)."""
        best: dict[str, tuple[dict, dict]] = {}
        for box, exp in zip(boxes, exposure, strict=True):
            b = self.brand(box["label"])
            self.totals["detections"] += 1
            b.detections += 1
            prom = float(exp.get("prominence") or 0.0)
            b.area.add(float(exp["area_share"]))
            b.prominence.add(prom)
            b.box_scores.add(float(box["score"]))
            pos = exp["position"]
            b.zones[pos["zone"]] += 1
            b.fine.add(float(pos["x"]), float(pos["y"]))
            if key is not None:
                s = self.series[box["label"]][key]
                s[0] += prom
                s[1] += 1
            if b.top.would_keep(prom):
                b.top.add(prom, item | {"box": _xyxy(box), "score": float(box["score"]), "prominence": prom})
            if box["label"] not in best or float(box["score"]) > float(best[box["label"]][0]["score"]):
                best[box["label"]] = (box, exp)
        return best

    def _borderline(self, b: BrandStats, score: float, item: dict, best: tuple[dict, dict] | None) -> None:
        thr = b.threshold if b.threshold is not None else self.default_threshold
        side = b.above if score >= thr else b.below
        dist = abs(score - thr)
        if side.would_keep(-dist):
            extra = {"score": score, "distance": dist, "box": _xyxy(best[0]) if best else None}
            side.add(-dist, item | extra)

    def finish(self, sources: list[str]) -> Report:
        from detector.report.table import brand_rows

        totals = {
            "records": self.totals["records"],
            "photos": self.totals["photos"],
            "frames": self.totals["frames"],
            "errors": self.totals["errors"],
            "detections": self.totals["detections"],
            "videos": len(self.videos),
            "video_seconds": sum(float(v.get("duration_s") or 0.0) for v in self.videos.values()),
            "appearances": len(self.seen_appearances),
            "malformed_records": self.totals["malformed"],
            "dropped_time_keys": self.dropped_keys,
        }
        if self.dropped_keys:
            self.problems.append(
                f"over {MAX_TIME_KEYS} distinct time keys: {self.dropped_keys} records left off the time plot"
            )
        return Report(
            brands=brand_rows(self.brands, totals),
            totals=totals,
            errors=self.errors,
            error_reasons=dict(self.reasons.most_common()),
            stats=self.brands,
            time_series=self.series,
            time_items=dict(self.time_items),
            time_label=self.time_label or ("time_s" if self.time_items else None),
            appearances=self.appearances,
            videos=self.videos,
            sources=sources,
            problems=self.problems,
        )


def _xyxy(box: dict[str, Any]) -> tuple[float, float, float, float]:
    return (float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"]))


def share(part: float, whole: float) -> float | None:
    return part / whole if whole and math.isfinite(whole) else None


__all__ = ["REPORT_SCHEMA", "ZONES", "BrandRow", "BrandStats", "Report", "ReportInputError", "build", "iter_records"]
