"""Speed of the default real-photo model on a social-media-sized photo (500x375), end to end, side by side.

The model is what `detect train` builds with pretrained weights: 224 px, head on mixed6. When the
FlickrLogos benchmark has trained one (benchmarks/flickr27.py, fold 0, `real` data, pretrained stand-in
weights) it is used, and its photos; otherwise the same architecture with random weights (BatchNorm run
a little) on synthetic 500x375 scenes: speed hardly depends on the weights (the box stage does a little).

Exported once to ONNX fp32 and with `--quantize auto` (int8 only where it agrees and is faster on this
machine). Measured, each row after one warm-up scan, in this one process: seconds per photo of
`Detector.scan(path)` (decode, pyramid, model, boxes) for tiles and dense mode, over `--photos` photos;
and one `detect scan PHOTO --model F.onnx --boxes` in a fresh process (start-up and model load included).

    .venv/bin/python benchmarks/photo_speed.py [--photos 20]   (part of `make bench`)

Writes benchmarks/results/photo-speed.json and prints the table, with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _bench_data import CACHE, scene_images  # noqa: E402
from _bench_machine import machine_info  # noqa: E402
from _bench_run import run_cmd, run_worker  # noqa: E402

FLICKR_MODEL = Path.home() / ".cache" / "logo-detector" / "flickr27" / "fold0" / "model-real"
FLICKR_PHOTOS = ROOT.parent / "shared" / "data" / "flickrlogos27-dev" / "images"
TARGET_S = 1.0


def model_and_photos(n: int) -> tuple[Path, list[Path], str]:
    if (FLICKR_MODEL / "model.json").is_file() and FLICKR_PHOTOS.is_dir():
        from PIL import Image

        photos = []
        for p in sorted(FLICKR_PHOTOS.glob("*.jpg")):
            with Image.open(p) as im:
                if im.size == (500, 375):
                    photos.append(p)
            if len(photos) == n:
                break
        return FLICKR_MODEL, photos, "FlickrLogos-27 model (fold 0, real photos, pretrained stand-in), 500x375 photos"
    rdir = CACHE / "inception224-mixed6-v1"
    if not (rdir / "model.keras").is_file():
        run_worker("make-model", {"input_size": 224, "cam_layer": "mixed6", "out": str(rdir)})
    return rdir, scene_images(500, 375, n), "random-weights 224/mixed6 model, synthetic 500x375 scenes"


def export(model_dir: Path, quantize: str) -> tuple[Path, str]:
    from export.onnx_export import export_model

    out = model_dir / f"speed-{quantize}.onnx"
    if not out.is_file():
        report = export_model(model_dir, out, quantize=quantize, log=lambda s: None)
        (model_dir / f"speed-{quantize}.json").write_text(json.dumps({"precision": report.precision, **report.choice}))
    return out, json.loads((model_dir / f"speed-{quantize}.json").read_text())["precision"]


def per_photo(onnx: Path, photos: list[Path], mode: str) -> dict:
    from detector.api import Detector
    from detector.pipeline.options import ScanOptions

    det = Detector.load(onnx, options=ScanOptions(mode=mode))
    det.scan(photos[0])
    times, windows = [], []
    for p in photos:
        t0 = time.perf_counter()
        res = det.scan(p)
        times.append(time.perf_counter() - t0)
        windows.append(res.timings_ms["tiles"])
    return {
        "median_s": round(statistics.median(times), 3),
        "mean_s": round(statistics.fmean(times), 3),
        "windows": round(statistics.fmean(windows), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=20)
    args = ap.parse_args()
    from detector.tfquiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    model_dir, photos, what = model_and_photos(args.photos)
    files = {"fp32": export(model_dir, "none"), "auto": export(model_dir, "auto")}
    rows = []
    for label, (onnx, precision) in files.items():
        for mode in ("dense", "tiles"):
            r = per_photo(onnx, photos, mode)
            cli = run_cmd(
                [sys.executable, str(ROOT / "cli.py"), "scan", str(photos[0]), "--model", str(onnx), "--boxes"]
            )
            rows.append(
                {
                    "file": label,
                    "precision": precision,
                    "mode": mode,
                    **r,
                    "cli_one_photo_s": round(cli.wall_s, 2),
                    "cli_peak_rss_mib": round(cli.max_rss_mb),
                    "meets_1s": r["median_s"] <= TARGET_S,
                }
            )
    machine = machine_info()
    out = {
        "benchmark": "photo-speed",
        "model": what,
        "model_dir": str(model_dir),
        "photos": len(photos),
        "target_s_per_photo": TARGET_S,
        "rows": rows,
        "machine": machine,
    }
    (HERE / "results" / "photo-speed.json").write_text(json.dumps(out, indent=2) + "\n")
    m = machine
    cpu = f"{m.get('cpu_model')} (family/model {m.get('cpu_family_model')}), {m.get('usable_cores')} cores"
    print(f"\n{what}; {len(photos)} photos; CPU: {cpu}; load average {machine.get('load_average_1_5_15')}")
    print("| ONNX file | precision | mode | windows | s/photo (median) | detect scan one photo, s | peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['file']} | {r['precision']} | {r['mode']} | {r['windows']} | {r['median_s']} | "
            f"{r['cli_one_photo_s']} | {r['cli_peak_rss_mib']} |"
        )


if __name__ == "__main__":
    main()
