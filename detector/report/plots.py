"""The report's plots: matplotlib figures rendered to SVG, inlined in the page as data URIs.

No pyplot (no GUI backend, no global state): each plot is a `Figure` drawn and saved to a string.
At most `MAX_BRANDS` brands get their own panel; the table lists them all.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from matplotlib.figure import Figure

MAX_BRANDS = 8
COLORS = ["#d9480f", "#1971c2", "#2f9e44", "#9c36b5", "#e8590c", "#0c8599", "#c2255c", "#5c940d"]


def svg_data_uri(fig: Figure) -> str:
    """The figure as an SVG data URI (text kept as text: small, and selectable)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "logo-report"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue().encode("utf-8")).decode("ascii")


def _panels(n: int, width: float = 3.2, height: float = 2.6) -> tuple[Figure, list[Any]]:
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    if n == 1:  # one panel is shown as wide as the others: keep its text the same size
        width, height = 6.5, 3.2
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def top_brands(report: Any) -> list[str]:
    return [r.brand for r in report.brands if r.photos + r.frames + r.detections > 0][:MAX_BRANDS]


def photos_per_brand(report: Any) -> str:
    rows = [r for r in report.brands if r.photos + r.frames > 0][:30]
    fig = Figure(figsize=(7, 0.45 * max(len(rows), 1) + 1.2), layout="constrained")
    ax = fig.subplots()
    names = [r.brand for r in rows][::-1]
    counts = [r.photos + r.frames for r in rows][::-1]
    bars = ax.barh(names, counts, color=COLORS[1])
    total = report.totals["photos"] + report.totals["frames"]
    ax.bar_label(bars, labels=[f"{c:,} ({c / total:.0%})" if total else str(c) for c in counts], padding=3)
    ax.set_xlabel("photos and frames with the brand")
    ax.set_title("Photos per brand")
    ax.margins(x=0.2)
    return svg_data_uri(fig)


def size_histogram(report: Any) -> str:
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.subplots()
    for i, label in enumerate(top_brands(report)):
        h = report.stats[label].area
        if not h.n:
            continue
        edges, counts = h.edges(), h.counts
        k = 40  # 1200 fine bins -> 30 bars a decade
        coarse = counts.reshape(-1, k).sum(axis=1)
        ax.stairs(coarse, edges[::k], label=label, color=COLORS[i % len(COLORS)], linewidth=1.6)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_xlabel("box area / image area")
    ax.set_ylabel("detections")
    ax.set_title("Logo size")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return svg_data_uri(fig)


def position_heatmaps(report: Any) -> str:
    labels = [lb for lb in top_brands(report) if report.stats[lb].detections]
    fig, axes = _panels(max(len(labels), 1), 3.0, 2.6)
    for ax, label in zip(axes, labels, strict=False):
        grid = report.stats[label].fine.counts
        im = ax.imshow(grid, cmap="magma", extent=(0, 1, 1, 0), aspect="auto", interpolation="nearest")
        for v in (1 / 3, 2 / 3):
            ax.axhline(v, color="white", linewidth=0.6, alpha=0.6)
            ax.axvline(v, color="white", linewidth=0.6, alpha=0.6)
        ax.set_title(f"{label}: where logos sit", fontsize=9)
        ax.set_xticks([0, 0.5, 1])
        ax.set_yticks([0, 0.5, 1])
        fig.colorbar(im, ax=ax, shrink=0.8, label="detections")
    if not labels:
        axes[0].text(0.5, 0.5, "no detections", ha="center", va="center")
        axes[0].set_axis_off()
    return svg_data_uri(fig)


def score_distributions(report: Any, default_threshold: float = 0.5) -> str:
    labels = [lb for lb in top_brands(report) if report.stats[lb].image_scores.n] or top_brands(report)[:1]
    fig, axes = _panels(max(len(labels), 1), 3.2, 2.4)
    for i, (ax, label) in enumerate(zip(axes, labels, strict=False)):
        b = report.stats[label]
        ax.stairs(b.image_scores.counts, b.image_scores.edges(), fill=True, color=COLORS[i % len(COLORS)], alpha=0.8)
        thr = b.threshold if b.threshold is not None else default_threshold
        ax.axvline(thr, color="black", linestyle="--", linewidth=1.2)
        ax.text(thr, 0.97, f" threshold {thr:.3g}", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xlim(0, 1)
        ax.set_xlabel("image score")
        ax.set_title(f"{label}: score distribution", fontsize=9)
    return svg_data_uri(fig)


def prominence_over_time(report: Any) -> str | None:
    if not report.time_series:
        return None
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.subplots()
    keys = sorted(report.time_items, key=lambda k: (0, k) if isinstance(k, (int, float)) else (1, str(k)))
    numeric = all(isinstance(k, (int, float)) for k in keys)
    xs = keys if numeric else list(range(len(keys)))
    for i, label in enumerate(top_brands(report)):
        series = report.time_series.get(label)
        if not series:
            continue
        # Mean prominence of the brand over every photo/frame with that key (0 where it is absent).
        ys = [series[k][0] / report.time_items[k] if k in series else 0.0 for k in keys]
        ax.plot(xs, ys, label=label, color=COLORS[i % len(COLORS)], linewidth=1.4, marker="." if len(xs) < 80 else None)
    if not numeric:
        step = max(1, len(keys) // 12)
        ax.set_xticks(xs[::step], [str(k) for k in keys[::step]], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel(report.time_label or "time")
    ax.set_ylabel("mean prominence")
    ax.set_title("Prominence over time")
    ax.set_ylim(bottom=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return svg_data_uri(fig)


def exposure_seconds(report: Any) -> str | None:
    rows = [r for r in report.brands if r.exposure_s > 0][:30]
    if not rows:
        return None
    fig = Figure(figsize=(7, 0.45 * len(rows) + 1.2), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh([r.brand for r in rows][::-1], [r.exposure_s for r in rows][::-1], color=COLORS[0])
    ax.bar_label(
        bars,
        labels=[f"{r.exposure_s:.1f} s ({r.screen_share or 0:.0%})" for r in rows][::-1],
        padding=3,
    )
    ax.set_xlabel("seconds on screen (share of screen time)")
    ax.set_title("Exposure on video")
    ax.margins(x=0.25)
    return svg_data_uri(fig)


def appearance_timeline(report: Any) -> str | None:
    if not report.appearances:
        return None
    lanes: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for a in report.appearances:
        lanes.setdefault((a["path"], a["label"]), []).append((a["start_s"], a["duration_s"]))
    keys = sorted(lanes)[:30]
    fig = Figure(figsize=(8, 0.4 * len(keys) + 1.3), layout="constrained")
    ax = fig.subplots()
    brands = sorted({k[1] for k in keys})
    for i, key in enumerate(keys):
        color = COLORS[brands.index(key[1]) % len(COLORS)]
        ax.broken_barh(lanes[key], (i - 0.35, 0.7), color=color)
    names = [f"{_short(p)} · {lb}" for p, lb in keys]
    ax.set_yticks(np.arange(len(keys)), names, fontsize=8)
    ax.invert_yaxis()
    longest = max(
        [float(v.get("duration_s") or 0) for v in report.videos.values()] + [a["end_s"] for a in report.appearances]
    )
    ax.set_xlim(0, longest * 1.02 or 1)
    ax.set_xlabel("seconds into the video")
    ax.set_title("Appearances on screen")
    ax.grid(axis="x", alpha=0.3)
    return svg_data_uri(fig)


def _short(path: str, n: int = 28) -> str:
    name = path.rsplit("/", 1)[-1]
    return name if len(name) <= n else "…" + name[-(n - 1) :]


def all_plots(report: Any) -> list[tuple[str, str, str]]:
    """(id, title, data URI) of every plot this report has."""
    plots = [
        ("photos-per-brand", "Photos per brand", photos_per_brand(report)),
        ("size-histogram", "Logo size", size_histogram(report)),
        ("position-heatmap", "Position heatmap", position_heatmaps(report)),
        ("score-distribution", "Score distribution", score_distributions(report)),
    ]
    for pid, title, fn in (
        ("prominence-over-time", "Prominence over time", prominence_over_time),
        ("exposure-seconds", "Exposure seconds", exposure_seconds),
        ("appearance-timeline", "Appearance timeline", appearance_timeline),
    ):
        uri = fn(report)
        if uri:
            plots.append((pid, title, uri))
    return plots
