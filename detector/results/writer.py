"""Where scan results go as they come: the terminal, a results file, annotated images.

Nothing written is lost or half-written: a streamed JSONL file is repaired before `--resume` appends
to it (a kill mid-line leaves a fragment, which is cut off so the next record starts on its own line;
the image of the torn record is scanned again), and the single-document formats (json, csv, coco) go
to a temporary file in the same folder that replaces the output only once it is complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
from rich.console import Console

from detector.model.meta import ModelMeta
from detector.options import OptionError, check_fields, option
from detector.results.atomic import write_atomic
from detector.results.formats import ParquetStream, to_coco, to_csv, to_jsonl_line
from detector.results.record import ScanResult, display_path
from detector.results.render import annotate, heatmap_overlay, write_rgb


def repair_torn_tail(path: Path) -> int:
    """Cut a last line that has no newline (a write killed mid-record); returns the bytes removed."""
    if not path.is_file():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        keep, pos = 0, size
        while pos > 0:  # scan back in blocks for the last newline
            step = min(1 << 16, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            i = block.rfind(b"\n")
            if i >= 0:
                keep = pos + i + 1
                break
        f.truncate(keep)
        return size - keep


FORMATS = ("text", "json", "jsonl", "csv", "coco", "parquet")


@dataclass(frozen=True)
class OutputOptions:
    """Where a scan's results go and in which form (declared once; the CLI's flags come from here).

    Example:
        >>> OutputOptions(format="jsonl", output="results.jsonl", resume=True).resume
        True
    """

    format: str = option("text", "text, json, jsonl, csv, coco or parquet (needs --output).", choices=FORMATS)
    output: str | None = option(None, "Write results to this file (default: stdout).")
    annotated_dir: str | None = option(None, "Write annotated images here.", flag="--out")
    print_boxes: bool = option(False, "Print the boxes.", flag="--boxes")
    resume: bool = option(False, "With --output x.jsonl: skip images already in it.")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.resume and (self.output is None or self.format != "jsonl"):
            raise OptionError("resume", "needs format jsonl and an output file (the results written so far)")
        if self.format == "parquet" and self.output is None:
            raise OptionError("format", "parquet needs an output file (--output results.parquet)")

    @property
    def output_path(self) -> Path | None:
        return None if self.output is None else Path(self.output)

    @property
    def annotated_path(self) -> Path | None:
        return None if self.annotated_dir is None else Path(self.annotated_dir)


class ScanWriter:
    """Streams jsonl/text per image, and parquet a row group at a time (renamed into place at the end);
    json/csv/coco are written once at the end (they are documents).

    `inputs` are the paths the user named: annotated images of files in a named folder keep their
    path under it. `single`: one image was asked for, so json writes its record, not a list."""

    def __init__(
        self,
        options: OutputOptions,
        meta: ModelMeta,
        inputs: Sequence[Path] = (),
        console: Console | None = None,
        single: bool = False,
    ) -> None:
        self.fmt, self.output, self.out_dir, self.meta = (
            options.format,
            options.output_path,
            options.annotated_path,
            meta,
        )
        self.show_boxes, self.console, self.single = options.print_boxes, console or Console(), single
        self.roots = [p for p in inputs if p.is_dir()]
        self.kept: list[ScanResult] = []
        self.records: list[dict] = []  # appearance and video records, for the json document
        self.stream: TextIO | None = None
        self.parquet = ParquetStream(self.output) if self.fmt == "parquet" and self.output is not None else None
        self.repaired = 0
        if self.output is not None and self.fmt in ("jsonl", "text"):
            self.output.parent.mkdir(parents=True, exist_ok=True)
            if options.resume:
                self.repaired = repair_torn_tail(self.output)
            self.stream = open(self.output, "a" if options.resume else "w", encoding="utf-8")  # noqa: SIM115

    def _name(self, path: str) -> Path:
        p = Path(path)
        for root in self.roots:
            try:
                return p.relative_to(root).with_suffix("")
            except ValueError:
                continue
        return Path(p.stem)

    def add(self, r: ScanResult, pixels: np.ndarray | None) -> None:
        if self.out_dir is not None and pixels is not None:
            name = self._name(r.path)
            if r.frame is not None:
                name = name.with_name(f"{name.name}.frame{r.frame:06d}")
            write_rgb(self.out_dir / f"{name}.jpg", annotate(pixels, r, self.meta.classes))
            for label, heat in (r.heatmaps or {}).items():
                write_rgb(self.out_dir / f"{name}.heatmap-{label}.jpg", heatmap_overlay(pixels, heat))
        if self.fmt == "jsonl":
            self._emit(to_jsonl_line(r))
        elif self.parquet is not None:
            self.parquet.add(r.as_dict())
        elif self.fmt == "text":
            self._emit(self._text(r))
        else:
            r.heatmaps = None
            self.kept.append(r)

    def add_record(self, rec: dict) -> None:
        """A record that is not one image's result (a video's appearance or closing record):
        a line in jsonl, a sentence in text, an element of the json list; csv, coco and parquet (rows of
        image and frame records) leave it out."""
        if self.fmt == "jsonl":
            self._emit(json.dumps(rec, ensure_ascii=False) + "\n")
        elif self.fmt == "text":
            self._emit(_record_text(rec))
        elif self.fmt == "json":
            self.records.append(rec)

    def _emit(self, text: str) -> None:
        """One image's lines, flushed at once: a kill loses at most the line being written (resume skips it)."""
        if self.stream:
            self.stream.write(text)
            self.stream.flush()
        else:
            self.console.out(text, end="", highlight=False)

    def _text(self, r: ScanResult) -> str:
        lines = []
        name = display_path(r.path)
        if r.frame is not None:
            name += f" @ {r.time_s:.2f} s (frame {r.frame})"
        if r.errors:
            lines.append(f"{name}: error: {'; '.join(r.errors)}")
        else:
            best = max(r.scores.items(), key=lambda kv: kv[1]) if r.scores else ("", 0.0)
            verdict = f"LOGO ({', '.join(r.labels)})" if r.has_logo else "no logo"
            lines.append(
                f"{name}: {verdict}  best {best[0]} {best[1]:.3f}  {len(r.boxes)} box(es)  "
                f"{r.timings_ms.get('model', 0) + r.timings_ms.get('tiling', 0) + r.timings_ms.get('boxes', 0):.0f} ms"
            )
            if self.show_boxes:
                for b in r.boxes:
                    lines.append(
                        f"  {b.label:<16} {b.score:.3f}  x1={b.x1:.0f} y1={b.y1:.0f} x2={b.x2:.0f} "
                        f"y2={b.y2:.0f}  (scale {b.scale:.3f})"
                    )
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        if self.fmt in ("json", "csv", "coco"):
            if self.fmt == "json":
                data = [r.as_dict() for r in self.kept] + self.records
                one = self.single and len(data) == 1
                text = json.dumps(data[0] if one else data, indent=2, ensure_ascii=False) + "\n"
            elif self.fmt == "csv":
                text = to_csv(self.kept)
            else:
                text = json.dumps(to_coco(self.kept, self.meta.positive_classes), indent=1) + "\n"
            if self.output:
                write_atomic(self.output, text)
            else:
                self.console.out(text, end="", highlight=False)
        if self.stream:
            self.stream.close()
        if self.parquet is not None:
            self.parquet.close()


def _record_text(rec: dict) -> str:
    name = display_path(rec.get("path", ""))
    if rec.get("record") == "appearance":
        return (
            f"{name}: {rec['label']} on screen {rec['start_s']:.2f}-{rec['end_s']:.2f} s "
            f"({rec['duration_s']:.2f} s, {rec['frames']} sampled frame(s), "
            f"peak prominence {rec['peak_prominence']:.3f})\n"
        )
    if rec.get("record") == "video":
        return f"{name}: video of {rec['duration_s']:.2f} s at {rec['fps']:g} fps, {rec['samples']} frame(s) sampled\n"
    return json.dumps(rec, ensure_ascii=False) + "\n"
