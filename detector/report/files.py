"""summary.json and summary.csv of a Report, and writing all three files."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from detector.report.exposure import EXPOSURE_VERSION, PROMINENCE_WEIGHTS, ZONES
from detector.results.atomic import write_atomic

CSV_COLUMNS = [
    "brand", "photos", "photo_share", "frames", "frame_share", "detections", "share_of_voice",
    "area_share_mean", "area_share_p10", "area_share_p50", "area_share_p90",
    "prominence_mean", "prominence_p10", "prominence_p50", "prominence_p90",
    "score_mean", "threshold", "appearances", "exposure_s", "screen_share",
]  # fmt: skip


def _gallery(report: Any) -> dict[str, Any]:
    return {
        label: {
            "top": b.top.items(),
            "borderline_above": b.above.items(),
            "borderline_below": b.below.items(),
        }
        for label, b in report.stats.items()
    }


def report_dict(report: Any) -> dict[str, Any]:
    from detector.report.build import REPORT_SCHEMA

    return {
        "schema": REPORT_SCHEMA,
        "exposure_version": EXPOSURE_VERSION,
        "prominence_weights": PROMINENCE_WEIGHTS,
        "sources": report.sources,
        "totals": report.totals,
        "brands": [asdict(r) for r in report.brands],
        "position_grid": {
            label: {"zones": {z: int(b.zones.get(z, 0)) for z in ZONES}, "fine": b.fine.counts.tolist()}
            for label, b in report.stats.items()
        },
        "over_time": {
            "key": report.time_label,
            "items": {str(k): v for k, v in sorted(report.time_items.items(), key=lambda kv: _sortable(kv[0]))},
            "brands": {
                label: {
                    str(k): {"prominence_sum": round(v[0], 4), "detections": int(v[1]), "items": int(v[2])}
                    for k, v in sorted(series.items(), key=lambda kv: _sortable(kv[0]))
                }
                for label, series in report.time_series.items()
            },
        },
        "appearances": report.appearances,
        "videos": report.videos,
        "gallery": _gallery(report),
        "errors": {"count": report.totals["errors"], "reasons": report.error_reasons, "listed": report.errors},
        "problems": report.problems,
    }


def _sortable(k: Any) -> tuple[int, Any]:
    return (0, k) if isinstance(k, (int, float)) else (1, str(k))


def to_csv(report: Any) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS + [f"zone_{z}" for z in ZONES])
    for r in report.brands:
        d = asdict(r)
        w.writerow(["" if d[c] is None else d[c] for c in CSV_COLUMNS] + [r.zones[z] for z in ZONES])
    return buf.getvalue()


def write_all(report: Any, out_dir: Path, images: Path | None) -> dict[str, Path]:
    from detector.report.html import write_page

    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "summary.json", json.dumps(report_dict(report), indent=1, ensure_ascii=False) + "\n")
    write_atomic(out_dir / "summary.csv", to_csv(report))
    page = write_page(report, out_dir, images)
    return {"html": page, "csv": out_dir / "summary.csv", "json": out_dir / "summary.json"}
