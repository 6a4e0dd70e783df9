"""Where scan results go as they come: the terminal, a results file, annotated images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import numpy as np
from rich.console import Console

from detector.model import ModelMeta
from detector.results import ScanResult, annotate, heatmap_overlay, to_coco, to_csv, to_jsonl_line, write_rgb


class ScanWriter:
    """Streams jsonl/text per image; json/csv/coco are written once at the end (they are documents)."""

    def __init__(
        self,
        fmt: str,
        output: Path | None,
        out_dir: Path | None,
        inputs: list[Path],
        meta: ModelMeta,
        show_boxes: bool,
        append: bool,
        console: Console,
        single: bool,
    ) -> None:
        self.fmt, self.output, self.out_dir, self.meta = fmt, output, out_dir, meta
        self.show_boxes, self.console, self.single = show_boxes, console, single
        self.roots = [p for p in inputs if p.is_dir()]
        self.kept: list[ScanResult] = []
        self.stream: TextIO | None = None
        if output is not None and fmt in ("jsonl", "text"):
            output.parent.mkdir(parents=True, exist_ok=True)
            self.stream = open(output, "a" if append else "w", encoding="utf-8")

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
            write_rgb(self.out_dir / f"{name}.jpg", annotate(pixels, r, self.meta.classes))
            for label, heat in (r.heatmaps or {}).items():
                write_rgb(self.out_dir / f"{name}.heatmap-{label}.jpg", heatmap_overlay(pixels, heat))
        if self.fmt == "jsonl":
            self._emit(to_jsonl_line(r))
        elif self.fmt == "text":
            self._emit(self._text(r))
        else:
            r.heatmaps = None
            self.kept.append(r)

    def _emit(self, text: str) -> None:
        """One image's lines, flushed at once: a kill loses at most the line being written (resume skips it)."""
        if self.stream:
            self.stream.write(text)
            self.stream.flush()
        else:
            self.console.out(text, end="", highlight=False)

    def _text(self, r: ScanResult) -> str:
        lines = []
        if r.errors:
            lines.append(f"{r.path}: error: {'; '.join(r.errors)}")
        else:
            best = max(r.scores.items(), key=lambda kv: kv[1]) if r.scores else ("", 0.0)
            verdict = f"LOGO ({', '.join(r.labels)})" if r.has_logo else "no logo"
            lines.append(
                f"{r.path}: {verdict}  best {best[0]} {best[1]:.3f}  {len(r.boxes)} box(es)  "
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
                data = [r.as_dict() for r in self.kept]
                text = json.dumps(data[0] if self.single and data else data, indent=2, ensure_ascii=False) + "\n"
            elif self.fmt == "csv":
                text = to_csv(self.kept)
            else:
                text = json.dumps(to_coco(self.kept, self.meta.positive_classes), indent=1) + "\n"
            if self.output:
                self.output.parent.mkdir(parents=True, exist_ok=True)
                self.output.write_text(text, encoding="utf-8")
            else:
                self.console.out(text, end="", highlight=False)
        if self.stream:
            self.stream.close()
