"""index.html: one self-contained page (styles, plots and crops inline; it opens offline, from a
file, on a phone or a desktop). Everything shown is escaped; nothing is fetched.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

from detector.report.exposure import PROMINENCE_WEIGHTS, ZONES
from detector.report.gallery import thumbnail_uri
from detector.report.plots import all_plots
from detector.results.atomic import write_atomic


def _css() -> str:
    """The page's styles (static/report.css), inlined: the page fetches nothing."""
    return (files("detector.report") / "static" / "report.css").read_text(encoding="utf-8")


def _fmt(v: Any, kind: str = "") -> str:
    if v is None:
        return "–"
    if kind == "pct":
        return f"{v:.1%}"
    if kind == "s":
        return f"{v:,.1f} s"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return escape(str(v))


def _totals(report: Any) -> str:
    t = report.totals
    cells = [("photos", t["photos"]), ("detections", t["detections"]), ("brands", len(report.brands))]
    if t["frames"] or t["videos"]:
        cells += [
            ("video frames", t["frames"]),
            ("videos", t["videos"]),
            ("video seconds", round(t["video_seconds"], 1)),
        ]
    cells += [("error records", t["errors"])]
    return (
        '<div class="totals">'
        + "".join(f'<div class="total"><b>{_fmt(v)}</b><span>{escape(k)}</span></div>' for k, v in cells)
        + "</div>"
    )


def _brand_table(report: Any) -> str:
    video = report.totals["videos"] > 0 or any(r.exposure_s for r in report.brands)
    cols = [
        ("brand", "brand", ""), ("photos", "photos", ""), ("photo share", "photo_share", "pct"),
        ("detections", "detections", ""), ("share of voice", "share_of_voice", "pct"),
        ("area share mean", "area_share_mean", "pct"), ("area p10", "area_share_p10", "pct"),
        ("area p50", "area_share_p50", "pct"), ("area p90", "area_share_p90", "pct"),
        ("prominence mean", "prominence_mean", ""), ("prom. p10", "prominence_p10", ""),
        ("prom. p50", "prominence_p50", ""), ("prom. p90", "prominence_p90", ""),
        ("mean box score", "score_mean", ""), ("threshold", "threshold", ""),
    ]  # fmt: skip
    if video:
        cols[3:3] = [("frames", "frames", ""), ("frame share", "frame_share", "pct")]
        cols += [
            ("appearances", "appearances", ""),
            ("exposure", "exposure_s", "s"),
            ("screen share", "screen_share", "pct"),
        ]
    head = "".join(f"<th scope=col>{escape(c[0])}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(getattr(r, c[1]), c[2])}</td>" for c in cols) + "</tr>" for r in report.brands
    )
    return (
        f'<div class="scroll"><table id="brand-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def _zone_grids(report: Any) -> str:
    out = []
    for r in report.brands:
        total = sum(r.zones.values())
        if not total:
            continue
        cells = []
        for row in range(3):
            tds = []
            for col in range(3):
                z = ZONES[row * 3 + col]
                share = r.zones[z] / total
                tds.append(
                    f'<td title="{escape(z)}: {r.zones[z]}" style="background:rgba(217,72,15,{0.08 + 0.9 * share:.3f});'
                    f'color:{"#fff" if share > 0.45 else "inherit"}">{share:.0%}</td>'
                )
            cells.append("<tr>" + "".join(tds) + "</tr>")
        out.append(
            f'<figure><table class="zone-grid" data-brand="{escape(r.brand)}">{"".join(cells)}</table>'
            f"<figcaption>{escape(r.brand)} ({total:,})</figcaption></figure>"
        )
    return '<div class="zones">' + "".join(out) + "</div>" if out else '<p class="note">No detections.</p>'


def _plots(report: Any) -> str:
    figs = [
        f'<figure class="plot" id="plot-{pid}"><img alt="{escape(title)}" src="{uri}">'
        f"<figcaption>{escape(title)}</figcaption></figure>"
        for pid, title, uri in all_plots(report)
    ]
    return '<div class="plots">' + "".join(figs) + "</div>"


def _card(item: dict[str, Any], images: Path | None, extra: str) -> str:
    uri = thumbnail_uri(item, images)
    name = item["path"].rsplit("/", 1)[-1]
    where = f" @ {item['time_s']:.1f} s" if item.get("frame") is not None else ""
    pic = f'<img alt="{escape(name)}" src="{uri}">' if uri else '<div class="missing">image not found</div>'
    return (
        f'<figure class="card">{pic}<figcaption title="{escape(item["path"])}">{escape(name)}{escape(where)}'
        f"<br>{extra}</figcaption></figure>"
    )


def _gallery(report: Any, images: Path | None) -> str:
    parts = []
    for r in report.brands:
        b = report.stats[r.brand]
        top, above, below = b.top.items(), b.above.items(), b.below.items()
        if not (top or above or below):
            continue
        parts.append(f'<div class="brand-gallery" data-brand="{escape(r.brand)}"><h3>{escape(r.brand)}</h3>')
        if top:
            cards = "".join(
                _card(it, images, f"prominence {it['prominence']:.3f} · score {it['score']:.3f}") for it in top
            )
            parts.append(f'<h4>Most prominent</h4><div class="cards top">{cards}</div>')
        if above or below:
            thr = b.threshold
            cards = "".join(
                _card(it, images, f'<span class="above">score {it["score"]:.4f} ▲</span>') for it in above
            ) + "".join(_card(it, images, f'<span class="below">score {it["score"]:.4f} ▼</span>') for it in below)
            note = f" (image threshold {thr:.4g})" if thr is not None else ""
            parts.append(
                f"<h4>Borderline{escape(note)}: just above ▲ and just below ▼, to review</h4>"
                f'<div class="cards borderline">{cards}</div>'
            )
        parts.append("</div>")
    return "".join(parts) or '<p class="note">Nothing to show.</p>'


def _appearances(report: Any) -> str:
    if not report.appearances:
        return ""
    rows = "".join(
        f"<tr><td>{escape(a['path'])}</td><td>{escape(a['label'])}</td><td>{a['start_s']:.2f}</td>"
        f"<td>{a['end_s']:.2f}</td><td>{a['duration_s']:.2f}</td><td>{a['peak_prominence']:.3f}</td></tr>"
        for a in report.appearances[:500]
    )
    more = len(report.appearances) - 500
    tail = f'<p class="note">and {more:,} more (summary.json)</p>' if more > 0 else ""
    return (
        '<h3>Appearances</h3><div class="scroll"><table id="appearance-table"><thead><tr><th>video</th><th>brand</th>'
        f"<th>start s</th><th>end s</th><th>duration s</th><th>peak prominence</th></tr></thead><tbody>{rows}</tbody>"
        f"</table></div>{tail}"
    )


def _errors(report: Any) -> str:
    n = report.totals["errors"]
    if not n and not report.problems:
        return '<p class="note">No error records.</p>'
    reasons = "".join(
        f"<tr><td>{escape(k)}</td><td>{v:,}</td></tr>" for k, v in list(report.error_reasons.items())[:50]
    )
    listed = "".join(f"<li><code>{escape(e['path'])}</code>: {escape(e['error'])}</li>" for e in report.errors)
    more = n - len(report.errors)
    tail = f'<p class="note">{more:,} more not listed (all are counted).</p>' if more > 0 else ""
    problems = "".join(f"<li>{escape(p)}</li>" for p in report.problems)
    out = f'<p id="error-count">{n:,} error record(s).</p>'
    if reasons:
        head = "<thead><tr><th>reason</th><th>records</th></tr></thead>"
        out += f'<div class="scroll"><table>{head}<tbody>{reasons}</tbody></table></div>'
    if listed:
        out += f'<ul class="errors" id="error-list">{listed}</ul>{tail}'
    if problems:
        out += f'<h3>Input problems</h3><ul class="errors">{problems}</ul>'
    return out


def render(report: Any, images: Path | None = None) -> str:
    """The whole page as a string."""
    from detector.report.build import REPORT_SCHEMA

    w = PROMINENCE_WEIGHTS
    src = ", ".join(escape(s) for s in report.sources) or "records given in Python"
    video = ""
    if report.totals["videos"] or report.appearances:
        video = f'<section id="video"><h2>Video</h2>{_appearances(report)}</section>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Logo exposure report</title><style>{_css()}</style></head>
<body>
<header><h1>Logo exposure report</h1><p class="meta">From {src}. {REPORT_SCHEMA}.</p>{_totals(report)}</header>
<section id="brands"><h2>Per brand</h2>{_brand_table(report)}
<p class="note">Photo share: photos with the brand / photos scanned without error. Share of voice: the brand's
detections / all detections. Area share: box area / image area.</p></section>
<section id="positions"><h2>Position (3x3)</h2>{_zone_grids(report)}</section>
<section id="plots"><h2>Plots</h2>{_plots(report)}</section>
{video}
<section id="gallery"><h2>Gallery</h2>{_gallery(report, images)}</section>
<section id="errors"><h2>Errors</h2>{_errors(report)}</section>
<footer class="note">Prominence = score × ({w["size"]} size + {w["centrality"]} centrality
+ {w["sharpness"]} sharpness);
size = min(1, √(area share / 0.25)); centrality = 1 − distance of the box centre from the image centre / that
distance at a corner; sharpness = v / (v + 100), v the variance of the Laplacian inside the box.</footer>
</body></html>
"""


def write_page(report: Any, out_dir: Path, images: Path | None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    write_atomic(path, render(report, images))
    return path
