"""What each command says when it is done: one-line summaries, kept out of the CLI's plumbing.

Each function takes the value a library call returned and gives the lines to print, so the CLI only
wires flags to calls and calls to these. Rich markup (`[yellow]`) marks warnings.
"""

from __future__ import annotations

from typing import Any


def dataset_skipped(skipped: list[tuple[str, str]], checked: bool) -> list[str]:
    if not skipped:
        return ["all files readable" if checked else "(decode check skipped)"]
    return [f"[yellow]{len(skipped)} file(s) skipped:[/yellow]", *(f"  {path}: {reason}" for path, reason in skipped)]


def imported(skipped: list[tuple[str, str]], out_dir: Any) -> list[str]:
    lines = [f"  skipped {path}: {reason}" for path, reason in skipped]
    return [*lines, f"box dataset written to {out_dir} (images are symlinks to the originals)"]


def synthesized(res: Any, tile_size: int) -> list[str]:
    lines = [
        f"{res.scenes} scenes with {res.boxes} logo boxes in {res.scenes_dir} ({res.scenes / res.seconds:.0f} scenes/s)"
    ]
    if res.tiles_dir:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(res.tiles.items()))
        lines.append(f"tiles ({tile_size} px) in {res.tiles_dir}: {counts}")
    return lines


def trained(result: Any) -> list[str]:
    ap = result.meta.validation.get("positive_average_precision")
    lines = [
        f"model written to {result.model_dir}  (validation AP of logo classes: "
        f"{'-' if ap is None else f'{ap:.3f}'}; thresholds {result.meta.thresholds})"
    ]
    if result.skipped:
        lines.append(f"[yellow]{len(result.skipped)} file(s) skipped[/yellow] (run `detect data` to list them)")
    return lines


def tuned_thresholds(report: dict[str, Any]) -> list[str]:
    tuning = report.get("threshold_tuning")
    if not tuning:
        return []
    lines = []
    for c, t in tuning["per_class"].items():
        note = "" if t["reached"] else f"  [yellow]target {tuning['target_precision']} not reached on val[/yellow]"
        lines.append(f"threshold for {c}: {t['threshold']:.4g} (stored in model.json){note}")
    return lines


def mined(rep: Any) -> list[str]:
    return [
        f"{rep.scenes} scenes, {rep.windows} windows: {rep.false_windows} false logo windows; "
        f"wrote {rep.written} hard negatives to {rep.out}"
    ]


def calibrated(report: dict[str, Any], split: str) -> list[str]:
    lines = []
    for c, t in report["image_thresholds"].items():
        note = "" if t["reached"] else "  [yellow](target not reached)[/yellow]"
        lines.append(
            f"{c}: image threshold {t['threshold']:.4g} -> precision {t['precision']:.3f}, "
            f"recall {t['recall']:.3f} on {report['images']} {split} scenes{note}"
        )
    ap = max(report["ap50_by_join_and_cam_threshold"].values())
    lines.append(
        f"CAM threshold {report['cam_threshold']:g}, fragments joined within {report['join_cells']:g} map cells "
        f"(box AP@0.5 {ap:.3f} on these scenes)"
    )
    if report.get("box_calibration_source"):
        lines.append(f"box calibration fitted on the {report['box_calibration_source']}")
    return lines


def exported(report: Any) -> list[str]:
    return [f"wrote {report.path} ({report.precision}, {report.size_bytes / 1e6:.1f} MB) in {report.seconds:.0f} s"]


def scanned(summary: Any) -> str:
    per = ", ".join(f"{k} {v}" for k, v in sorted(summary.per_label.items())) or "none"
    vids = f", {summary.frames} of them frames of {summary.videos} video(s)" if summary.videos else ""
    return (
        f"scanned {summary.images} image(s){vids} ({summary.skipped_done} already done): "
        f"{summary.with_logo} with a logo ({per}), {summary.errors} error(s)"
    )


def reported(rep: Any, files: dict[str, Any]) -> str:
    t = rep.totals
    return (
        f"{t['photos']:,} photo(s), {t['frames']:,} frame(s), {t['detections']:,} detection(s), "
        f"{len(rep.brands)} brand(s), {t['errors']:,} error record(s) -> {files['html']}"
    )
