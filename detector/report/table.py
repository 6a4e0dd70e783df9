"""The per-brand table (BrandRow) from the streamed statistics."""

from __future__ import annotations

from typing import Any

from detector.report.exposure import ZONES
from detector.report.stats import Histogram


def _r(v: float | None, nd: int = 6) -> float | None:
    return None if v is None else round(float(v), nd)


def _pcts(h: Histogram) -> tuple[float | None, ...]:
    return tuple(_r(h.percentile(q)) for q in (10, 50, 90))


def brand_rows(stats: dict[str, Any], totals: dict[str, Any]) -> list:
    """One BrandRow per brand, most photos and frames first."""
    from detector.report.build import BrandRow, share

    rows = []
    for b in stats.values():
        a10, a50, a90 = _pcts(b.area)
        p10, p50, p90 = _pcts(b.prominence)
        rows.append(
            BrandRow(
                brand=b.label,
                photos=b.photos,
                photo_share=_r(share(b.photos, totals["photos"])),
                frames=b.frames,
                frame_share=_r(share(b.frames, totals["frames"])),
                detections=b.detections,
                share_of_voice=_r(share(b.detections, totals["detections"])),
                area_share_mean=_r(b.area.mean),
                area_share_p10=a10,
                area_share_p50=a50,
                area_share_p90=a90,
                prominence_mean=_r(b.prominence.mean),
                prominence_p10=p10,
                prominence_p50=p50,
                prominence_p90=p90,
                score_mean=_r(b.box_scores.mean),
                threshold=_r(b.threshold),
                appearances=b.appearances,
                exposure_s=round(b.exposure_s, 3),
                screen_share=_r(share(b.exposure_s, totals["video_seconds"])),
                zones={z: int(b.zones.get(z, 0)) for z in ZONES},
            )
        )
    return sorted(rows, key=lambda r: (-(r.photos + r.frames), -r.detections, r.brand))
