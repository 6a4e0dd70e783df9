"""Brand analytics from scan results: exposure per brand, plots, a gallery, video screen time.

    from detector.report import build
    report = build(["results.jsonl"])          # streams the JSONL: flat memory for any size
    for row in report.brands:                  # the per-brand table
        print(row.brand, row.photos, row.share_of_voice, row.prominence_mean)
    report.write("report/", images="photos/")  # index.html, summary.csv, summary.json

Modules: exposure (per-detection fields, at scan time), stats (fixed-memory histograms and top-N),
timekeys (what "over time" means), build (records -> Report), table, files (csv/json), plots
(matplotlib -> inline SVG), gallery (crops for the few gallery items), html (the page).
"""

from detector.report.build import REPORT_SCHEMA, BrandRow, Report, build, iter_records

__all__ = ["REPORT_SCHEMA", "BrandRow", "Report", "build", "iter_records"]
