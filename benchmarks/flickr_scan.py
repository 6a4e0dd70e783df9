"""Scan-level metrics on real photos: one brand of FlickrLogos-27 (dev part, ../shared), a few dozen photos.

What a user would bring for one brand: its logo file, a few dozen photos with boxes, photos without it.

1. training data, all of it from the *train* split (hash of the file name, `detector.data.folders.split_of`):
   - synthetic scenes of the brand's glyph (`../shared/data/logos/glyphs/BRAND.png`), half on the built-in
     backgrounds and half on the train-split `none` photos, with half of the other glyphs as distractors
     (`detect synth`, as `benchmarks/synth_transfer.py` does);
   - the brand's train-split photos with their boxes and the train-split `none` photos, cut into tiles
     with the scanner's own tiling (`detector.data.tilecut`); each real logo tile is used `--real-copies` times
     (the scanner's tiling gives only a few per box), with random crops and brightness in training;
2. Inception v3 from scratch (`--weights none`: no ImageNet weights here), 128 px, head on mixed2, trained
   for `--minutes`;
3. `detector.evaluation.scenes.calibrate` on the val split (the brand's photos and the `none` photos): image
   threshold for `--target-precision` (0.77, the original project's precision), CAM threshold, joining;
4. `detector.evaluation.scenes.evaluate_scenes` on the test split: the brand's photos plus the `none` photos,
   and again with the test-split photos of the other 15 brands added as negatives. Image-level
   precision/recall/AP and COCO box AP@0.5 and AP@[.5:.95], beside the chance levels and the original
   project's 77% precision / 40% recall;
5. a diagnostic column: box AP@0.5 when every box down to the tile threshold is kept (the scanner drops
   boxes scoring under the image threshold, which a high calibrated image threshold makes "no box at all").

Every photo is symlinked into `--work` (outside the project); only the figures are written, to
benchmarks/results/flickr-scan-BRAND.json.

    .venv/bin/python benchmarks/flickr_scan.py [--brand starbucks] [--minutes 10] [--scenes 400]
        [--reuse-model] [--limit N]     (--reuse-model: evaluate again without retraining; --limit: smoke test)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

from synth_transfer import FLICKR, SHARED, _flickr_brand_boxes, _split_glyphs  # noqa: E402

from detector.data.boxes import IMAGES, BoxDataset, ImageRecord, write_box_dataset  # noqa: E402
from detector.data.folders import split_of  # noqa: E402

if TYPE_CHECKING:
    from detector.backends import Backend
    from detector.pipeline.options import ScanOptions

NEGATIVE = "no-logo"
ORIGINAL = {"precision": 0.77, "recall": 0.40}


def flickr_label_of(brand: str) -> str:
    """The dataset's spelling of the brand ('starbucks' -> 'Starbucks')."""
    with open(FLICKR / "image_labels.csv", newline="") as f:
        labels = {row["label"] for row in csv.DictReader(f)}
    for label in labels:
        if label.lower() == brand.lower():
            return label
    raise SystemExit(f"brand '{brand}' is not in {FLICKR / 'image_labels.csv'}: {', '.join(sorted(labels))}")


def image_labels() -> dict[str, str]:
    with open(FLICKR / "image_labels.csv", newline="") as f:
        return {row["file"]: row["label"] for row in csv.DictReader(f)}


def subset(full: BoxDataset, records: list[ImageRecord], root: Path) -> BoxDataset:
    """A box dataset of some of `full`'s photos: symlinks to the originals, fresh annotations."""
    shutil.rmtree(root, ignore_errors=True)
    (root / IMAGES).mkdir(parents=True)
    for r in records:
        (root / IMAGES / r.file).symlink_to(full.image_path(r).resolve())
    return write_box_dataset(root, records, full.labels)


def split_photos(full: BoxDataset, brand_label: str, work: Path, limit: int | None = None) -> dict[str, BoxDataset]:
    """train/val/test: the brand's boxed photos + the `none` photos of each split; other: other brands' test.

    `limit` keeps only that many photos of each evaluation set, logo photos first (a smoke test).
    """
    labels = image_labels()
    groups: dict[str, list[ImageRecord]] = {"train": [], "val": [], "test": [], "other": []}
    for r in full.images:
        label, split = labels.get(r.file, ""), split_of(r.file)
        if label in (brand_label, "none"):
            groups[split].append(r)
        elif split == "test":
            groups["other"].append(r)
    if limit is not None:
        for name in ("val", "test", "other"):
            groups[name] = sorted(groups[name], key=lambda r: not r.boxes)[:limit]
    out = {name: subset(full, recs, work / f"photos-{name}") for name, recs in groups.items()}
    out["test+other"] = subset(full, groups["test"] + groups["other"], work / "photos-test+other")
    return out


def link_tiles(src: Path, dst: Path, prefix: str, copies: dict[str, int] | None = None) -> dict[str, int]:
    """Symlink a class-folder tile set into dst under a prefix; copies[class] > 1 repeats its tiles (weight).

    The names keep their `_nohash_` part, so every tile of one photo or scene shares a training split.
    """
    counts: dict[str, int] = {}
    for cls_dir in sorted(d for d in src.iterdir() if d.is_dir()):
        out = dst / cls_dir.name
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(cls_dir.glob("*.jpg")):
            for k in range((copies or {}).get(cls_dir.name, 1)):
                name = f"{prefix}{f.stem}{f'_c{k}' if k else ''}{f.suffix}"
                (out / name).symlink_to(f.resolve())
                counts[cls_dir.name] = counts.get(cls_dir.name, 0) + 1
    return counts


def none_backgrounds(ds: BoxDataset, work: Path) -> Path:
    """The train split's photos without boxes (the `none` photos), as a folder of backgrounds."""
    d = work / "backgrounds-none-train"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for r in ds.images:
        if not r.boxes:
            (d / r.file).symlink_to(ds.image_path(r).resolve())
    return d


def prepare_training(
    args: argparse.Namespace, logo: Path, brand: str, train_photos: BoxDataset, work: Path, tiles: Path
) -> dict[str, dict[str, int]]:
    """Synthetic scenes (built-in and none-photo backgrounds) + the real train photos' tiles, in one folder."""
    from detector.data.tilecut import TileRules, tiles_from_box_dataset
    from detector.synth import SynthConfig, synthesize

    d_train, _ = _split_glyphs(args.brand, work)
    rules = TileRules(size=args.input_size)
    half = args.scenes // 2
    synth_dirs = []
    for tag, backgrounds, n, seed in (
        ("builtin", None, args.scenes - half, 1),
        ("none-photos", none_backgrounds(train_photos, work), half, 2),
    ):
        out = work / f"synth-{tag}"
        shutil.rmtree(out, ignore_errors=True)
        cfg = SynthConfig(
            out=out,
            logos=[logo],
            backgrounds=backgrounds,
            distractors=d_train,
            scenes=n,
            seed=seed,
            tile_size=rules.size,
        )
        r = synthesize(cfg)
        print(f"synth on {tag} backgrounds: {r.scenes} scenes, {r.boxes} boxes, tiles {r.tiles}", flush=True)
        synth_dirs.append((tag, r.tiles_dir))
    real_tiles = work / "real-tiles"
    shutil.rmtree(real_tiles, ignore_errors=True)
    real_rules = TileRules(
        size=args.input_size, negatives_per_scene=args.real_negatives, max_positives_per_box=args.real_positives
    )
    real_counts, skipped = tiles_from_box_dataset(train_photos, real_tiles, real_rules, negative_class=NEGATIVE)
    print(f"real train photos -> tiles {real_counts}" + (f", skipped {skipped}" if skipped else ""), flush=True)
    shutil.rmtree(tiles, ignore_errors=True)
    mix: dict[str, dict[str, int]] = {}
    for tag, d in synth_dirs:
        mix[f"synthetic ({tag})"] = link_tiles(d, tiles, f"syn-{tag}-")
    mix[f"real (positives x{args.real_copies})"] = link_tiles(real_tiles, tiles, "real-", {brand: args.real_copies})
    return mix


def count_mix(tiles: Path) -> dict[str, dict[str, int]]:
    """{source: {class: tiles}} of a training folder made by prepare_training (from the name prefixes)."""
    mix: dict[str, dict[str, int]] = {}
    for cls_dir in sorted(d for d in tiles.iterdir() if d.is_dir()):
        for f in cls_dir.iterdir():
            m = re.match(r"syn-(.+?)-s\d+-", f.name)
            source = f"synthetic ({m.group(1)})" if m else "real"
            mix.setdefault(source, {}).setdefault(cls_dir.name, 0)
            mix[source][cls_dir.name] += 1
    return mix


def boxes_without_image_threshold(
    backend: Backend, brand: str, sets: dict[str, BoxDataset], opts: ScanOptions, ev_val: list, evidence: dict
) -> dict:
    """Diagnostic: box AP with every box down to the *tile* threshold kept.

    `assemble_result` keeps a box only when its score (the mean probability of the windows holding it)
    reaches the class's *image* threshold, which calibration sets on the best tile of a photo; a high
    image threshold then removes every box. Here the image threshold is lowered to the tile threshold
    for the box stage only, the CAM threshold and joining distance are chosen on the val photos as
    `calibrate` does (best AP@0.5), and the test sets are scored from the evidence already collected.
    """
    from detector.evaluation.scenes import CAM_THRESHOLD_CANDIDATES, JOIN_CANDIDATES, evaluate_scenes

    meta = backend.meta
    saved = dict(meta.image_thresholds)
    tile_thr = meta.threshold(brand)
    meta.image_thresholds = {**saved, brand: tile_thr}
    try:
        table = {}
        for j in JOIN_CANDIDATES:
            for t in CAM_THRESHOLD_CANDIDATES:
                o = replace(opts, cam_threshold=t, join_cells=j)
                table[(j, t)] = evaluate_scenes(backend, sets["val"], "all", o, ev_val).report["box"]["ap50"] or 0.0
        j, t = max(table, key=lambda jt: (table[jt], -abs(jt[1] - 0.5)))
        o = replace(opts, cam_threshold=t, join_cells=j)
        boxes = {k: evaluate_scenes(backend, sets[k], "all", o, ev).report["box"] for k, ev in evidence.items()}
    finally:
        meta.image_thresholds = saved
    return {
        "tile_threshold": round(tile_thr, 4),
        "cam_threshold": t,
        "join_cells": j,
        "val_ap50": table[(j, t)],
        "val_ap50_by_join_and_cam_threshold": {f"join {a:g}, threshold {b:g}": v for (a, b), v in table.items()},
        "box": boxes,
    }


def _counts(ds: BoxDataset) -> dict[str, int]:
    return {
        "photos": len(ds.images),
        "with_logo": sum(bool(r.boxes) for r in ds.images),
        "boxes": sum(len(r.boxes) for r in ds.images),
    }


def _row(name: str, rep: dict, brand: str) -> dict:
    im = rep["image_level"][brand]
    share = im["images_with_logo"] / im["images"] if im["images"] else None
    return {
        "set": name,
        "photos": rep["images"],
        "with_logo": im["images_with_logo"],
        "boxes": rep["boxes"],
        "image_precision": im["precision"],
        "image_recall": im["recall"],
        "image_ap": im["average_precision"],
        "chance_share": None if share is None else round(share, 4),
        "box_ap50": rep["box"]["ap50"],
        "box_ap": rep["box"]["ap"],
        "detections": rep["box"].get("detections", 0),
    }


def _fmt(v: object, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def print_table(rows: list[dict]) -> None:
    head = (
        "| test set | photos | with logo | boxes | image precision | image recall | image AP "
        "| chance (share with logo) | box AP@0.5 | box AP@[.5:.95] | box AP@0.5, boxes to tile threshold |"
    )
    print(head)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [r["set"], r["photos"], r["with_logo"], r["boxes"], r["image_precision"], r["image_recall"]]
        cells += [r["image_ap"], r["chance_share"], r["box_ap50"], r["box_ap"], r.get("box_ap50_unfiltered")]
        print("| " + " | ".join(_fmt(c) for c in cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--brand", default="starbucks", help="a FlickrLogos brand whose glyph is in logos/glyphs")
    p.add_argument("--scenes", type=int, default=400, help="synthetic training scenes (half on real backgrounds)")
    p.add_argument("--real-copies", type=int, default=6, help="how many times each real positive tile is used")
    p.add_argument("--real-negatives", type=int, default=12, help="negative tiles cut per real photo")
    p.add_argument("--real-positives", type=int, default=12, help="at most this many tiles per real box")
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--cam-layer", default="mixed2")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--target-precision", type=float, default=0.77)
    p.add_argument("--no-other-brands", action="store_true", help="skip the other brands' test photos")
    p.add_argument("--reuse-model", action="store_true", help="evaluate the model already in --work, if there")
    p.add_argument("--limit", type=int, default=None, help="at most this many photos per evaluation set (smoke test)")
    p.add_argument("--work", type=Path, default=Path("/tmp/logo-detector-flickr-scan"))
    args = p.parse_args()
    if not FLICKR.is_dir():
        raise SystemExit(f"{FLICKR} not found: this benchmark needs ../shared beside the project")
    logo = SHARED / "logos" / "glyphs" / f"{args.brand}.png"
    if not logo.is_file():
        raise SystemExit(f"{logo} not found: pick a brand with a glyph in {logo.parent}")

    from detector.synth.synthesize import logo_name
    from detector.tfquiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from detector.training import TrainConfig, train

    brand_label = flickr_label_of(args.brand)
    brand = logo_name(logo)  # the class name synthesis gives the glyph: the real boxes must match it
    if brand != brand_label.lower():
        raise SystemExit(f"the glyph's class name '{brand}' differs from the boxes' label '{brand_label.lower()}'")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    # 1. the photos, split; the synthetic scenes; the tiles
    full_dir = _flickr_brand_boxes(brand_label, work)
    from detector.data.boxes import read_box_dataset

    sets = split_photos(read_box_dataset(full_dir), brand_label, work, args.limit)
    for name, ds in sets.items():
        print(f"{name:>10}: {_counts(ds)}", flush=True)
    model = work / f"model-{args.brand}-{args.input_size}-{args.cam_layer}"
    tiles = work / "train-tiles"
    reuse = args.reuse_model and (model / "model.json").is_file()
    if reuse:
        print(f"reusing the model in {model} and the tiles in {tiles}", flush=True)
        mix = count_mix(tiles)
    else:
        mix = prepare_training(args, logo, brand, sets["train"], work, tiles)
        print(f"training tiles: {mix}", flush=True)
    timings["data_seconds"] = round(time.monotonic() - t0, 1)

    # 2. train
    if not reuse:
        t1 = time.monotonic()
        train(
            TrainConfig(
                data=str(tiles),
                out=str(model),
                weights="none",
                input_size=args.input_size,
                cam_layer=args.cam_layer,
                fine_tune="all",
                fine_tune_epochs=40,
                patience=6,
                random_crop=10,
                random_brightness=15,
                max_minutes=args.minutes,
                test_percent=0.0,  # the photos' test split is held out already; every tile trains or validates
            ),
            log=lambda s: print(s, flush=True),
        )
        timings["train_seconds"] = round(time.monotonic() - t1, 1)

    # 3. calibrate on the val photos, 4. scan the test photos
    from detector.backends import open_backend
    from detector.evaluation.calibrate import calibrate
    from detector.evaluation.scenes import collect_evidence, evaluate_scenes
    from detector.pipeline.options import ScanOptions

    t2 = time.monotonic()
    backend = open_backend(model)
    validation = dict(backend.meta.validation)
    opts = ScanOptions()
    cal = calibrate(backend, sets["val"], args.target_precision, split="all", opts=opts)
    backend.meta, calib = cal.applied(backend.meta), cal.report
    timings["calibrate_seconds"] = round(time.monotonic() - t2, 1)
    t3 = time.monotonic()
    evidence = {"test": collect_evidence(backend, sets["test"], sets["test"].images, opts, progress="scan test")}
    if not args.no_other_brands:
        other = sets["other"]
        evidence["other"] = collect_evidence(backend, other, other.images, opts, progress="scan other brands")
        evidence["test+other"] = evidence["test"] + evidence["other"]
    scenes = {k: evaluate_scenes(backend, sets[k], "all", opts, ev) for k, ev in evidence.items()}
    reports = {k: sr.report for k, sr in scenes.items() if k != "other"}
    if "other" in scenes:
        called = sum(bool(res.labels) for res in scenes["other"].results)
        reports["test+other"]["other_brand_photos_called_logo"] = called
    timings["scan_seconds"] = round(time.monotonic() - t3, 1)
    t4 = time.monotonic()
    ev_val = collect_evidence(backend, sets["val"], sets["val"].images, opts, progress="scan val")
    unfiltered = boxes_without_image_threshold(backend, brand, sets, opts, ev_val, evidence)
    timings["diagnostic_seconds"] = round(time.monotonic() - t4, 1)
    timings["total_minutes"] = round((time.monotonic() - t0) / 60, 1)

    names = {
        "test": f"{brand_label} + none photos (test split)",
        "test+other": "... + the other 15 brands' test photos as negatives",
    }
    rows = [
        _row(names[k], rep, brand) | {"box_ap50_unfiltered": unfiltered["box"][k]["ap50"]} for k, rep in reports.items()
    ]
    val_choice = calib["image_thresholds"][brand]
    print()
    print_table(rows)
    print(f"| original project (reported) | | | | {ORIGINAL['precision']:.2f} | {ORIGINAL['recall']:.2f} | | | | | |")
    print()
    print(
        f"calibration on {calib['images']} val photos: image threshold {val_choice['threshold']:.3g} "
        f"(precision {val_choice['precision']}, recall {val_choice['recall']}, target {args.target_precision} "
        f"{'reached' if val_choice['reached'] else 'not reached'}); CAM threshold {calib['cam_threshold']}, "
        f"fragments joined within {calib['join_cells']:g} cells; box AP@0.5 on val "
        f"{max(calib['ap50_by_join_and_cam_threshold'].values()):.3f} at best"
    )
    if "test+other" in reports:
        called, n_other = reports["test+other"]["other_brand_photos_called_logo"], len(evidence["other"])
        print(f"other brands' test photos called '{brand}': {called} of {n_other}")
    print(
        f"chance: calling every photo '{brand}' gives precision = the share with the logo and recall 1; "
        "a random score gives image AP = that share"
    )
    print(
        f"last column (diagnostic): every box down to the tile threshold {unfiltered['tile_threshold']:.3g} kept "
        "(the scanner drops boxes scoring under the image threshold); "
        f"CAM threshold {unfiltered['cam_threshold']}, join {unfiltered['join_cells']:g} chosen on val as calibrate "
        f"does (val box AP@0.5 {unfiltered['val_ap50']:.3f})"
    )
    print(f"times: {timings}")

    res = {
        "what": "scan-level metrics on real FlickrLogos photos, one brand, few labelled photos + synthetic scenes",
        "brand": args.brand,
        "weights": "none",
        "input_size": args.input_size,
        "cam_layer": args.cam_layer,
        "minutes_budget": args.minutes,
        "photos": {name: _counts(ds) for name, ds in sets.items()},
        "training_tiles": mix,
        "synthetic_scenes": args.scenes,
        "real_positive_copies": args.real_copies,
        "reused_model": reuse,
        "training_phases": validation.get("phases"),
        "train_seconds": validation.get("train_seconds"),
        "tile_validation": validation.get("per_class", {}).get(brand, {}),
        "calibration": calib,
        "results": rows,
        "reports": reports,
        "diagnostic_boxes_without_image_threshold": unfiltered,
        "original_project": ORIGINAL,
        "timings": timings,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
    }
    out = (work if args.limit else ROOT / "benchmarks" / "results") / f"flickr-scan-{args.brand}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
