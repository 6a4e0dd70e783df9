"""The benchmark that decides: the engine on real photos, FlickrLogos-27 dev (../shared), 16 brands.

Every photo is tested exactly once: 5 folds by a hash of the file name (`fold_of`). For fold k the
other four folds are the user's labelled photos (80% to train, 20% to validate by name hash), fold k
is the test set. Weights: the pretrained stand-in (../shared/weights, see its README: ImageNet up to
mixed5, mixed6..10 tuned for another task), the recipe's defaults (224 px, head on mixed6, head only).

Variants, side by side:
- `real`: one 16-brand model from the real photos with their boxes (the scanner's own tiles);
- `both`: the same photos plus synthetic scenes of the brands' logo graphics (`detect synth`);
- `synth`: the logo graphics alone (../shared/data/logos; 11 of the 16 brands have one), calibrated
  on synthetic validation scenes, tested on every real photo (none was used to build it);
- `per-brand`: one model per brand (its photos + the `none` photos), for `--per-brand` brands;
- `whole`: a whole-photo classifier on the same photos (no boxes), the original project's method;
- `tiles`: the `both` model scanned tile by tile instead of densely (`--tiles-folds` folds).
Each is calibrated on its validation photos (`detect calibrate`: image thresholds for 90% precision,
CAM threshold, box calibration) and scanned in dense mode unless said otherwise.

Reported per brand and as the mean over brands: image precision and recall at the calibrated
thresholds, recall at 77% and 90% precision, image AP, box AP@0.5 and AP@[.5:.95] (pycocotools);
negatives are the `none` photos plus the other 15 brands' photos, and again with the `none` photos
alone. Seconds per photo come from the ONNX file of one `both` model (`--speed-photos`).

Head-only models share the frozen backbone, so the photos' feature maps are computed once and every
head is applied to them (benchmarks/_backbone_cache.py; checked against the Keras backend).

    .venv/bin/python benchmarks/flickr27.py [--quick] [--variants real,both,synth,per-brand,whole,tiles]
        [--work DIR] [--per-brand adidas,nike,starbucks,pepsi] [--synth-scenes 800]

Writes benchmarks/results/flickr27.json (flickr27.quick.json with --quick) and prints the tables.
Nothing made from the photos is written inside the project: the work folder defaults to
~/.cache/logo-detector/flickr27.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import shutil
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402

from detector.data.boxes import IMAGES, BoxDataset, ImageRecord, import_box_dataset, write_box_dataset  # noqa: E402
from detector.data.folders import split_of  # noqa: E402
from detector.geometry import Box  # noqa: E402

SHARED = ROOT.parent / "shared"
FLICKR = SHARED / "data" / "flickrlogos27-dev"
LOGOS = SHARED / "data" / "logos"
WEIGHTS = SHARED / "weights" / "inception_v3_pretrained_notop.h5"
NEGATIVE = "no-logo"
FOLDS = 5
VAL_PERCENT = 20.0
TARGET_PRECISION = 0.9
ORIGINAL = {"precision": 0.77, "recall": 0.40}


def fold_of(file_name: str) -> int:
    """The fold of a photo, from its name alone (a hash independent of the train/val split's)."""
    return int(hashlib.sha1(b"fold|" + Path(file_name).stem.encode()).hexdigest(), 16) % FOLDS


def brand_logo(brand: str) -> Path | None:
    """The brand's graphic in ../shared/data/logos (one-colour glyph first, then the colour logo)."""
    for p in (LOGOS / "glyphs" / f"{brand}.png", LOGOS / "color" / f"{brand}.png"):
        if p.is_file():
            return p
    return None


def load_photos(work: Path) -> tuple[BoxDataset, dict[str, str]]:
    """All dev photos as one box dataset (labels in lower case, as logo file names give them)."""
    ds, _ = import_box_dataset(
        FLICKR / "boxes.csv",
        "csv",
        work / "all",
        images_dir=FLICKR / "images",
        image_labels=FLICKR / "image_labels.csv",
    )
    with open(FLICKR / "image_labels.csv", newline="") as f:
        labels = {r["file"]: r["label"].lower() for r in csv.DictReader(f)}
    records = [
        ImageRecord(r.file, r.width, r.height, [Box(b.label.lower(), b.x1, b.y1, b.x2, b.y2) for b in r.boxes])
        for r in ds.images
    ]
    return BoxDataset(ds.root, records, sorted({b.label for r in records for b in r.boxes})), labels


def subset(full: BoxDataset, records: list[ImageRecord], root: Path, keep: set[str] | None = None) -> BoxDataset:
    """A box dataset of some photos (symlinks); boxes of labels outside `keep` are dropped."""
    shutil.rmtree(root, ignore_errors=True)
    (root / IMAGES).mkdir(parents=True)
    out = []
    for r in records:
        (root / IMAGES / r.file).symlink_to(full.image_path(r).resolve())
        out.append(ImageRecord(r.file, r.width, r.height, [b for b in r.boxes if keep is None or b.label in keep]))
    return write_box_dataset(root, out, sorted(keep) if keep else full.labels)


def synth_scenes(work: Path, brands: list[str], scenes: int) -> BoxDataset | None:
    """Synthetic scenes of the brands' logo graphics on the built-in backgrounds, glyphs of other
    brands as distractors; the same scenes serve every fold (no real photo is in them)."""
    from detector.data.boxes import read_box_dataset
    from detector.synth import SynthConfig, synthesize

    logos = {b: brand_logo(b) for b in brands}
    logos = {b: p for b, p in logos.items() if p}
    if not logos:
        return None
    root = work / f"synth-{scenes}"
    if not (root / "scenes" / "annotations.json").is_file():
        named = work / "logo-files"
        named.mkdir(parents=True, exist_ok=True)
        for b, p in logos.items():
            if not (named / f"{b}.png").exists():
                (named / f"{b}.png").symlink_to(p)
        distractors = work / "distractors"
        distractors.mkdir(exist_ok=True)
        for p in sorted((LOGOS / "glyphs").glob("*.png"))[::7]:
            if not any(p.stem.startswith(b) for b in brands) and not (distractors / p.name).exists():
                (distractors / p.name).symlink_to(p)
        logo_files = sorted(named.glob("*.png"))
        cfg = SynthConfig(out=root, logos=logo_files, distractors=distractors, scenes=scenes, seed=27, tiles=False)
        synthesize(cfg)
    return read_box_dataset(root / "scenes")


#: The fine-tuned variant: the top two blocks below the head (mixed5, mixed6) train with the head, with
#: distortions (no flip: logos carry text), BatchNorm frozen, for at most FINE_TUNE_MINUTES.
FINE_TUNE = dict(
    fine_tune="2", fine_tune_epochs=3, random_crop=10, random_scale=15, random_brightness=20, random_color=20
)
FINE_TUNE_MINUTES = 25.0


def train_model(data: list[str], out: Path, cache: Path, log, **recipe) -> Path:
    from detector.training import TrainConfig, train

    if (out / "model.json").is_file():
        return out
    t0 = time.monotonic()
    cfg = TrainConfig(
        data=data,
        out=str(out),
        weights=str(WEIGHTS),
        negative_class=NEGATIVE,
        val_percent=VAL_PERCENT,
        test_percent=0.0,
        cache_dir=str(cache),
        resume=True,
        **{"fine_tune": "none", **recipe},  # head only unless the variant asks for fine-tuning
    )
    result = train(cfg, log=lambda s: None)
    log(f"    trained {out.name}: {result.phases} in {time.monotonic() - t0:.0f} s")
    return out


def calibrate_and_scan(backend, val: BoxDataset, test: BoxDataset, opts, log) -> list:
    """`detect calibrate` on the validation photos, then scan the test photos: ScanResults in test order."""
    from detector.evaluation.calibrate import calibrate
    from detector.evaluation.scenes import collect_evidence
    from detector.pipeline.scan import assemble_result

    cal = calibrate(backend, val, TARGET_PRECISION, split="all", opts=opts)
    backend.meta, report = cal.applied(backend.meta), cal.report
    log(
        f"    calibrated on {report['images']} photos: CAM threshold {report['cam_threshold']}, "
        f"box calibration {'fitted' if report['box_calibration'] else 'none (too few boxes)'}"
    )
    evidence = collect_evidence(backend, test, test.images, opts)
    return [(rec, assemble_result(ev, backend, opts, rec.file)) for rec, ev in evidence], report


# ---------------------------------------------------------------- metrics


def _recall_at(y: np.ndarray, s: np.ndarray, p: float) -> float:
    from sklearn.metrics import precision_recall_curve

    prec, rec, _ = precision_recall_curve(y, s)
    ok = prec >= p
    return float(rec[ok].max()) if ok.any() else 0.0


def brand_metrics(pairs: list, brand: str, photo_labels: dict[str, str], negatives: str) -> dict:
    """Image and box metrics of one brand over (record, result) pairs; negatives: 'all' or 'none'."""
    from sklearn.metrics import average_precision_score

    from detector.evaluation.scenes import box_ap

    keep = [
        (rec, res)
        for rec, res in pairs
        if negatives == "all"
        or photo_labels.get(rec.file) in (brand, "none")
        or any(b.label == brand for b in rec.boxes)
    ]
    recs, results = [r for r, _ in keep], [s for _, s in keep]
    y = np.array([any(b.label == brand for b in r.boxes) for r in recs])
    s = np.array([res.scores.get(brand, 0.0) for res in results])
    pred = np.array([brand in res.labels for res in results])
    tp, fp = int((y & pred).sum()), int((~y & pred).sum())
    boxes = box_ap(results, recs, [brand]) if y.any() else {"ap50": None, "ap": None}
    return {
        "photos": len(recs),
        "with_logo": int(y.sum()),
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / max(int(y.sum()), 1), 4),
        "recall_at_p77": round(_recall_at(y, s, 0.77), 4),
        "recall_at_p90": round(_recall_at(y, s, 0.90), 4),
        "image_ap": round(float(average_precision_score(y, s)), 4) if y.any() and (~y).any() else None,
        "box_ap50": boxes["ap50"],
        "box_ap": boxes["ap"],
    }


def summarize(pairs: list, brands: list[str], photo_labels: dict[str, str], seconds: float | None) -> dict:
    out = {}
    for negatives in ("all", "none"):
        per = {b: brand_metrics(pairs, b, photo_labels, negatives) for b in brands}
        keys = ("precision", "recall", "recall_at_p77", "recall_at_p90", "image_ap", "box_ap50", "box_ap")
        mean = {k: _mean([m[k] for m in per.values()]) for k in keys}
        out[f"negatives_{negatives}"] = {"mean": mean, "per_brand": per}
    out["photos"] = len(pairs)
    out["seconds_per_photo"] = seconds
    return out


def _mean(values: list) -> float | None:
    v = [x for x in values if x is not None]
    return round(float(np.mean(v)), 4) if v else None


# ---------------------------------------------------------------- variants


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.work).expanduser()
        self.work.mkdir(parents=True, exist_ok=True)
        self.cache = self.work / "cache"
        self.full, self.labels = load_photos(self.work)
        self.brands = sorted(self.full.labels)
        if args.brands:
            self.brands = [b for b in self.brands if b in args.brands.split(",")]
        self.folds = [int(k) for k in args.folds.split(",")] if args.folds else list(range(FOLDS))
        if args.quick:
            self.folds = self.folds[:1]
        self.maps = None
        self.results: dict = {}
        self.checks: dict = {}
        self.log = lambda s: print(s, flush=True)
        self.opts = None

    def scan_opts(self, mode: str = "dense"):
        from detector.pipeline.options import ScanOptions

        return ScanOptions(mode=mode)

    def photos(self, fold: int, part: str) -> list[ImageRecord]:
        recs = [r for r in self.full.images if self._wanted(r)]
        if part == "test":
            out = [r for r in recs if fold_of(r.file) == fold]
        else:
            out = [
                r
                for r in recs
                if fold_of(r.file) != fold and (split_of(r.file, VAL_PERCENT, 0.0) == "val") == (part == "val")
            ]
        if self.args.quick:
            out = out[:: 3 if part == "train" else 2]
        return out

    def _wanted(self, r: ImageRecord) -> bool:
        label = self.labels.get(r.file)
        return label == "none" or label in self.brands

    def backend(self, model_dir: Path):
        from _backbone_cache import CachedHeadBackend, FeatureMaps, check_against_keras

        if self.maps is None:
            from detector.model.store import load_model_dir

            self.maps = FeatureMaps(load_model_dir(model_dir)[0], self.work / "feature-maps")
        backend = CachedHeadBackend(model_dir, self.maps)
        if model_dir.name not in self.checks:
            from detector.images import load_image

            px = load_image(self.full.image_path(self.full.images[0])).pixels[None]
            self.checks[model_dir.name] = check_against_keras(backend, px)
        return backend

    def run_split_variant(
        self, name: str, train_data, keep: set[str] | None = None, mode: str = "dense", model: str | None = None
    ) -> None:
        """Train per fold on `train_data(fold, train_ds)`, calibrate on the fold's validation photos, scan
        its test photos; pool the results of every fold."""
        pairs, t0 = [], time.monotonic()
        for k in self.folds:
            fold_dir = self.work / f"fold{k}"
            train_recs = self.photos(k, "train") + self.photos(k, "val")
            train_ds = subset(self.full, train_recs, fold_dir / f"train-{name}", keep)
            val = subset(self.full, self.photos(k, "val"), fold_dir / f"val-{name}", keep)
            test = subset(self.full, self.photos(k, "test"), fold_dir / "test")
            model_dir = train_model(train_data(k, train_ds), fold_dir / f"model-{model or name}", self.cache, self.log)
            got, _ = calibrate_and_scan(self.backend(model_dir), val, test, self.scan_opts(mode), self.log)
            pairs += got
            self.log(f"  {name} fold {k}: {len(got)} test photos ({time.monotonic() - t0:.0f} s)")
        self.results[name] = summarize(pairs, sorted(keep) if keep else self.brands, self.labels, None)
        self.results[name]["minutes"] = round((time.monotonic() - t0) / 60, 1)

    def real(self) -> None:
        self.run_split_variant("real", lambda k, ds: [str(ds.root)])

    def both(self) -> None:
        synth = synth_scenes(self.work, self.brands, self.args.synth_scenes)
        self.run_split_variant("both", lambda k, ds: [str(ds.root)] + ([str(synth.root)] if synth else []))

    def tiles(self) -> None:
        """The `both` models again, scanned tile by tile (every window cut and run: slower)."""
        folds, self.folds = self.folds, self.folds[: self.args.tiles_folds]
        try:
            synth = synth_scenes(self.work, self.brands, self.args.synth_scenes)
            self.run_split_variant(
                "tiles", lambda k, ds: [str(ds.root)] + ([str(synth.root)] if synth else []), mode="tiles", model="both"
            )
        finally:
            self.folds = folds

    def fine_tune(self) -> None:
        """The `real` data with the top two blocks fine-tuned (`--fine-tune-folds` folds): every photo's
        backbone changes, so this variant scans with the plain Keras backend."""
        from detector.backends import open_backend

        pairs, t0 = [], time.monotonic()
        for k in self.folds[: self.args.fine_tune_folds]:
            fold_dir = self.work / f"fold{k}"
            train_ds = subset(self.full, self.photos(k, "train") + self.photos(k, "val"), fold_dir / "train-ft")
            val = subset(self.full, self.photos(k, "val"), fold_dir / "val-ft")
            test = subset(self.full, self.photos(k, "test"), fold_dir / "test-ft")
            model_dir = train_model(
                [str(train_ds.root)],
                fold_dir / "model-fine-tune",
                self.cache,
                self.log,
                max_minutes=FINE_TUNE_MINUTES,
                **FINE_TUNE,
            )
            got, _ = calibrate_and_scan(open_backend(model_dir, "keras"), val, test, self.scan_opts(), self.log)
            pairs += got
            self.log(f"  fine-tune fold {k}: {len(got)} test photos ({time.monotonic() - t0:.0f} s)")
        self.results["fine-tune"] = summarize(pairs, self.brands, self.labels, None)
        self.results["fine-tune"]["folds"] = self.folds[: self.args.fine_tune_folds]
        self.results["fine-tune"]["recipe"] = {**FINE_TUNE, "max_minutes": FINE_TUNE_MINUTES}
        self.results["fine-tune"]["minutes"] = round((time.monotonic() - t0) / 60, 1)

    def synth(self) -> None:
        """Logo files only: one model, calibrated on synthetic validation scenes, tested on every photo."""
        from detector.evaluation.scenes import scene_split

        t0 = time.monotonic()
        synth = synth_scenes(self.work, self.brands, self.args.synth_scenes)
        if synth is None:
            return
        covered = set(synth.labels)
        model = train_model([str(synth.root)], self.work / "model-synth", self.cache, self.log)
        val_recs = scene_split(synth, "val")[: 80 if self.args.quick else 200]
        val = subset(synth, val_recs, self.work / "synth-val")
        every = [r for k in self.folds for r in self.photos(k, "test")]
        test = subset(self.full, every, self.work / "test-all")
        pairs, _ = calibrate_and_scan(self.backend(model), val, test, self.scan_opts(), self.log)
        self.results["synth"] = summarize(pairs, sorted(covered & set(self.brands)), self.labels, None)
        self.results["synth"]["brands_with_a_logo_file"] = sorted(covered)
        self.results["synth"]["minutes"] = round((time.monotonic() - t0) / 60, 1)

    def per_brand(self) -> None:
        brands = [b for b in self.args.per_brand.split(",") if b in self.brands][: 1 if self.args.quick else None]
        per: dict = {}
        for b in brands:
            name = f"brand-{b}"

            def only(r: ImageRecord, b: str = b) -> bool:
                return self.labels.get(r.file) in (b, "none")

            pairs = []
            for k in self.folds:
                fold_dir = self.work / f"fold{k}"
                train_recs = [r for r in self.photos(k, "train") + self.photos(k, "val") if only(r)]
                train_ds = subset(self.full, train_recs, fold_dir / f"train-{name}", {b})
                val = subset(self.full, [r for r in self.photos(k, "val") if only(r)], fold_dir / f"val-{name}", {b})
                test = subset(self.full, self.photos(k, "test"), fold_dir / "test")
                model = train_model([str(train_ds.root)], fold_dir / f"model-{name}", self.cache, self.log)
                got, _ = calibrate_and_scan(self.backend(model), val, test, self.scan_opts(), self.log)
                pairs += got
            per[b] = summarize(pairs, [b], self.labels, None)
        self.results["per-brand"] = {
            "brands": brands,
            "per_brand_models": per,
            "mean": {
                neg: {
                    k: _mean([per[b][neg]["mean"][k] for b in brands])
                    for k in ("recall_at_p90", "recall_at_p77", "image_ap", "box_ap50")
                }
                for neg in ("negatives_all", "negatives_none")
            },
        }

    def whole(self) -> None:
        """The whole-photo classifier: each photo squashed to the input size, one label per photo."""
        from detector.evaluation.metrics import choose_threshold
        from detector.images import load_image, resize_to
        from detector.model.predict import predict_batches
        from detector.model.store import load_model_dir

        t0, rows = time.monotonic(), []
        for k in self.folds:
            root = self.work / f"fold{k}" / "whole-photos"
            shutil.rmtree(root, ignore_errors=True)
            for r in self.photos(k, "train") + self.photos(k, "val"):
                label = self.labels[r.file]
                d = root / (NEGATIVE if label == "none" else label)
                d.mkdir(parents=True, exist_ok=True)
                (d / r.file).symlink_to(self.full.image_path(r).resolve())
            model_dir = train_model([str(root)], self.work / f"fold{k}" / "model-whole", self.cache, self.log)
            model, meta = load_model_dir(model_dir)

            def probs(recs: list[ImageRecord], model=model, size: int = meta.input_size) -> np.ndarray:
                px = np.stack([resize_to(load_image(self.full.image_path(r)).pixels, size) for r in recs])
                return predict_batches(model, px, 32)

            val, test = self.photos(k, "val"), self.photos(k, "test")
            pv, pt = probs(val), probs(test)
            for b in self.brands:
                if b not in meta.classes:
                    continue
                ci = meta.classes.index(b)
                yv = np.array([self.labels[r.file] == b for r in val])
                thr = choose_threshold(yv, pv[:, ci], TARGET_PRECISION, among="f1").threshold
                for r, p in zip(test, pt[:, ci], strict=True):
                    rows.append((r.file, b, float(p), bool(p >= thr)))
        from detector.results.record import ScanResult

        by_photo: dict[str, ScanResult] = {}
        for f, b, p, hit in rows:
            res = by_photo.setdefault(f, ScanResult(path=f))
            res.scores[b] = p
            if hit:
                res.labels.append(b)
        recs = {r.file: r for r in self.full.images}
        pairs = [(recs[f], res) for f, res in by_photo.items()]
        self.results["whole"] = summarize(pairs, self.brands, self.labels, None)
        for neg in ("negatives_all", "negatives_none"):  # a whole-photo classifier gives no boxes
            self.results["whole"][neg]["mean"]["box_ap50"] = self.results["whole"][neg]["mean"]["box_ap"] = None
        self.results["whole"]["minutes"] = round((time.monotonic() - t0) / 60, 1)

    def speed(self) -> None:
        """Seconds per photo, end to end in one process, with the ONNX file of fold 0's `both` model."""
        from detector.api import Detector
        from detector.pipeline.options import ScanOptions
        from export.onnx_export import export_model

        model_dir = self.work / f"fold{self.folds[0]}" / "model-both"
        if not model_dir.is_dir():
            return
        onnx = self.work / "both-fold0.onnx"
        if not onnx.is_file():
            export_model(model_dir, onnx, log=lambda s: None)
        photos = [self.full.image_path(r) for r in self.photos(self.folds[0], "test")][: self.args.speed_photos]
        out = {}
        for mode in ("dense", "tiles"):
            det = Detector.load(onnx, options=ScanOptions(mode=mode))
            det.scan(photos[0])
            t0 = time.perf_counter()
            sizes = [det.scan(p).timings_ms["tiles"] for p in photos]
            out[mode] = {
                "seconds_per_photo": round((time.perf_counter() - t0) / len(photos), 3),
                "windows_per_photo": round(float(np.mean(sizes)), 1),
            }
        out["photos"] = len(photos)
        out["backend"] = det.backend.name
        self.results["speed_onnx_fp32"] = out


def print_tables(results: dict) -> None:
    cols = ("precision", "recall", "recall_at_p77", "recall_at_p90", "image_ap", "box_ap50", "box_ap")
    print("\n| variant | negatives | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 2) + "|")
    for name, r in results.items():
        if not isinstance(r, dict) or "negatives_all" not in r:
            continue
        for neg in ("negatives_all", "negatives_none"):
            m = r[neg]["mean"]
            cells = ["-" if m.get(c) is None else f"{m[c]:.3f}" for c in cols]
            print(f"| {name} | {neg.split('_')[1]} | " + " | ".join(cells) + " |")
    if "per-brand" in results:
        print("\nper-brand models:", json.dumps(results["per-brand"]["mean"]))
    if "speed_onnx_fp32" in results:
        print("speed:", json.dumps(results["speed_onnx_fp32"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fold 0 only, a third of the photos: a few minutes")
    ap.add_argument("--variants", default="real,both,synth,per-brand,whole,tiles,fine-tune")
    ap.add_argument("--work", default="~/.cache/logo-detector/flickr27")
    ap.add_argument("--folds", default="", help="only these test folds (comma-separated, 0-4); default: all five")
    ap.add_argument("--brands", default="", help="only these brands (comma-separated, lower case)")
    ap.add_argument("--per-brand", default="adidas,nike,starbucks,pepsi")
    ap.add_argument("--synth-scenes", type=int, default=800)
    ap.add_argument("--tiles-folds", type=int, default=1)
    ap.add_argument("--fine-tune-folds", type=int, default=1)
    ap.add_argument("--speed-photos", type=int, default=20)
    ap.add_argument("--no-speed", action="store_true", help="skip the ONNX timing at the end")
    args = ap.parse_args()
    if not (FLICKR.is_dir() and WEIGHTS.is_file()):
        raise SystemExit(f"needs {FLICKR} and {WEIGHTS} (the workplace's shared/ folder)")
    if args.quick:
        args.synth_scenes = min(args.synth_scenes, 240)
    bench = Bench(args)
    t0 = time.monotonic()
    out = ROOT / "benchmarks" / "results" / ("flickr27.quick.json" if args.quick else "flickr27.json")
    for v in args.variants.split(","):
        print(f"== {v}", flush=True)
        getattr(bench, v.replace("-", "_"))()
        write_results(out, bench, args, t0)
    if not args.no_speed:
        bench.speed()
    results = write_results(out, bench, args, t0)
    print_tables(results)
    print(f"\nwritten {out} ({round((time.monotonic() - t0) / 60, 1)} min)")


def write_results(out: Path, bench: Bench, args: argparse.Namespace, t0: float) -> dict:
    """The JSON so far, merged with the variants an earlier run of the same file measured."""
    earlier = json.loads(out.read_text()) if out.is_file() else {}
    results = {
        **earlier,
        "benchmark": "flickr27",
        "quick": args.quick,
        "weights": f"pretrained stand-in {WEIGHTS.name} (../shared/weights/README.md)",
        "folds": bench.folds,
        "brands": bench.brands,
        "target_precision_of_calibration": TARGET_PRECISION,
        "original_project": ORIGINAL,
        "max_prob_difference_vs_keras": {**earlier.get("max_prob_difference_vs_keras", {}), **bench.checks},
        "feature_maps": {"computed": bench.maps.computed, "reused": bench.maps.hits, "MiB": round(bench.maps.mib)}
        if bench.maps
        else None,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "minutes": round((time.monotonic() - t0) / 60, 1),
        **bench.results,
    }
    results["minutes_by_run"] = {**earlier.get("minutes_by_run", {}), args.variants: results.pop("minutes")}
    out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
