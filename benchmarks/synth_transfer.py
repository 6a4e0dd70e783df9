"""Does a model trained on synthetic scenes of one brand's logo find it elsewhere?

1. `detect synth` training scenes of one logo (from ../shared/data/logos) on the built-in backgrounds,
   with one half of the other glyphs as distractors;
2. held-out scenes with another seed, real photos as backgrounds (the FlickrLogos `none` photos, never
   used in training) and the *other* half of the glyphs as distractors;
3. train Inception v3 from scratch (no ImageNet weights here), evaluate tile-level on (2);
4. evaluate the same model on tiles of the real FlickrLogos photos: that brand's boxed photos as
   positives, every other photo (other brands, no logo) as negatives.

    .venv/bin/python benchmarks/synth_transfer.py [--brand starbucks] [--minutes 14]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FLICKR = SHARED / "flickrlogos27-dev"


def _split_glyphs(brand: str, work: Path) -> tuple[Path, Path]:
    """Two disjoint folders (symlinks) of distractor glyphs, none of them the brand's own marks."""
    files = sorted(p for p in (SHARED / "logos" / "glyphs").glob("*.png") if not p.stem.startswith(brand))
    a, b = work / "distractors-train", work / "distractors-test"
    for i, f in enumerate(files):
        d = a if i % 2 == 0 else b
        d.mkdir(parents=True, exist_ok=True)
        if not (d / f.name).exists():
            (d / f.name).symlink_to(f)
    return a, b


def _flickr_none_photos(work: Path) -> Path:
    d = work / "flickr-none"
    d.mkdir(parents=True, exist_ok=True)
    for row in csv.DictReader(open(FLICKR / "image_labels.csv")):
        if row["label"] == "none" and not (d / row["file"]).exists():
            (d / row["file"]).symlink_to(FLICKR / "images" / row["file"])
    return d


def _flickr_brand_boxes(brand_label: str, work: Path) -> Path:
    """A box dataset: the brand's boxes; every other photo (other brands or none) as a negative."""
    from detector.data.boxes import import_box_dataset

    rows = [r for r in csv.DictReader(open(FLICKR / "boxes.csv")) if r["brand"] == brand_label]
    boxes_csv = work / f"flickr-{brand_label}.csv"
    with open(boxes_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "x1", "y1", "x2", "y2"])
        for r in rows:
            w.writerow([r["file"], brand_label.lower(), r["x1"], r["y1"], r["x2"], r["y2"]])
    labels_csv = work / f"flickr-{brand_label}-labels.csv"
    with open(labels_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label"])
        for r in csv.DictReader(open(FLICKR / "image_labels.csv")):
            w.writerow([r["file"], r["label"] if r["label"] == brand_label else "none"])
    out = work / f"flickr-{brand_label}-boxes"
    import_box_dataset(boxes_csv, "csv", out, FLICKR / "images", image_labels=labels_csv)
    return out


def main() -> None:
    from rich.console import Console

    from detector.console.tables import evaluation_table
    from detector.data.tilecut import TileRules
    from detector.evaluation.tiles import evaluate
    from detector.synth import SynthConfig, synthesize
    from detector.synth.scenes import SceneConfig
    from detector.training import TrainConfig, train

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--brand", default="starbucks")
    p.add_argument("--flickr-label", default="Starbucks")
    p.add_argument("--scenes", type=int, default=700)
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--cam-layer", default="mixed2")
    p.add_argument("--minutes", type=float, default=14.0)
    p.add_argument("--work", default="/tmp/logo-detector-transfer")
    args = p.parse_args()
    console = Console()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    logo = SHARED / "logos" / "glyphs" / f"{args.brand}.png"
    d_train, d_test = _split_glyphs(args.brand, work)
    rules = TileRules(size=args.input_size)
    t0 = time.monotonic()
    train_cfg = SynthConfig(
        out=work / "train", logos=[logo], distractors=d_train, scenes=args.scenes, seed=1, tile_size=rules.size
    )
    tr = synthesize(train_cfg)
    te = synthesize(
        SynthConfig(
            out=work / "test",
            logos=[logo],
            backgrounds=_flickr_none_photos(work),
            distractors=d_test,
            scenes=args.scenes // 3,
            seed=2,
            tile_size=rules.size,
            scene=SceneConfig(),
        )
    )
    console.print(f"synth: train {tr.tiles} ({tr.scenes / tr.seconds:.0f} scenes/s), test {te.tiles}")
    model = work / f"model-{args.brand}-{args.input_size}-{args.cam_layer}"
    train(
        TrainConfig(
            data=str(tr.tiles_dir),
            out=str(model),
            weights="none",
            input_size=args.input_size,
            cam_layer=args.cam_layer,
            fine_tune="all",
            fine_tune_epochs=30,
            patience=5,
            max_minutes=args.minutes,
        ),
        log=lambda s: console.print(s, highlight=False),
    )
    train_min = (time.monotonic() - t0) / 60
    synth_eval = evaluate(model, te.tiles_dir, "all", out_dir=model / "eval-synth")
    console.print(evaluation_table(synth_eval.report))
    real = evaluate(model, _flickr_brand_boxes(args.flickr_label, work), "all", out_dir=model / "eval-flickr")
    console.print(evaluation_table(real.report))
    res = {
        "brand": args.brand,
        "input_size": args.input_size,
        "cam_layer": args.cam_layer,
        "weights": "none",
        "train_scenes": tr.scenes,
        "train_tiles": tr.tiles,
        "minutes_total": round(train_min, 1),
        "synthetic_heldout": {"n": synth_eval.report["n"], **synth_eval.report["per_class"][args.brand]},
        "flickr_real_tiles": {"n": real.report["n"], **real.report["per_class"][args.brand]},
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"synth-transfer-{args.brand}.json").write_text(json.dumps(res, indent=2) + "\n")
    console.print(res)


if __name__ == "__main__":
    main()
