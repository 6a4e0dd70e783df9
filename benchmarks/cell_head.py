"""An experiment for #12: a box-supervised per-cell head on the frozen pretrained backbone.

The engine's head is trained on whole windows (one label per tile, pooled features) and its boxes come
from Grad-CAM, which lights a logo's telling part: on FlickrLogos-27 only 39% of the logos get a box,
at a median IoU of 0.42. Here the boxes supervise the map itself. Every cell of the backbone's map
(mixed6 by default: the recipe's CAM block) takes the label of the box its centre falls in. Cells in a
ring around each box (a cell plus a quarter of the box on each side) are ignored. The rest are
background: all of a photo's cells in a box, up to `--neg` background cells per photo and scale. A
softmax head over the cells is then trained: linear, the same form as the classifier's 1x1 `logits`
head, or with `--hidden N` a small MLP.

At test time a photo's score per brand is its best cell's probability. Its boxes are the connected
components of the upsampled class map above max(tau, alpha x peak), merged over the scales by NMS.
The photos run whole at 1x and 2x, as dense mode runs a pyramid level.

Same photos, folds (`flickr27.fold_of`), train/val split (the head trains on the train part of the
other four folds) and metrics (`flickr27.brand_metrics`: pycocotools box AP, recall at 77/90%
precision, negatives = none + the other 15 brands, and `none` alone) as benchmarks/flickr27.py, so
its rows compare with that table. Only the threshold-free metrics are reported: no image thresholds
are calibrated here.

    .venv/bin/python benchmarks/cell_head.py [--folds 0,1,2,3,4] [--hidden 0] [--layers mixed6]

The backbone maps are cached in ~/.cache/logo-detector/flickr27/cell-maps (about 12 minutes on 2 cores
the first time; nothing made from the photos is written inside the project). The result is written to
benchmarks/results/cell_head.json, keyed by the variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import flickr27 as F  # noqa: E402
import numpy as np  # noqa: E402

from detector.data.boxes import ImageRecord  # noqa: E402
from detector.data.folders import split_of  # noqa: E402
from detector.geometry import Detections  # noqa: E402
from detector.pipeline.stitch import LevelCanvas  # noqa: E402
from detector.results.record import ScanResult  # noqa: E402

BLOCKS = ("mixed5", "mixed6", "mixed7")
SCALES = (1.0, 2.0)
#: Inception v3 needs >= 75 px; a photo whose short side is below this at a scale is upscaled to it.
MIN_SIDE = 160
METRICS = ("recall_at_p77", "recall_at_p90", "image_ap", "box_ap50", "box_ap")


def compute_maps(full, folder: Path) -> None:
    """Every photo's mixed5/6/7 maps at 1x and 2x, float16, one .npz per photo (only the missing)."""
    todo = [r for r in full.images if not (folder / f"{Path(r.file).stem}.npz").is_file()]
    if not todo:
        return
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    base = keras.applications.InceptionV3(include_top=False, weights=str(F.WEIGHTS), input_shape=(None, None, 3))
    model = keras.Model(base.input, [base.get_layer(n).output for n in BLOCKS])
    t0 = time.monotonic()
    for i, r in enumerate(todo):
        img = cv2.cvtColor(cv2.imread(str(full.image_path(r))), cv2.COLOR_BGR2RGB)
        out = {}
        for s in SCALES:
            f = max(s, s * MIN_SIDE / min(img.shape[:2]))
            im = img if f == 1.0 else cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR)
            for n, m in zip(BLOCKS, model((im.astype(np.float32) / 127.5 - 1.0)[None], training=False), strict=True):
                out[f"{n}@{s}"] = np.asarray(m[0]).astype(np.float16)
        np.savez(folder / f"{Path(r.file).stem}.npz", **out)
        if i % 50 == 0:
            print(f"maps {i}/{len(todo)} {time.monotonic() - t0:.0f} s", flush=True)


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """cv2.resize of a many-channel map (OpenCV takes at most 512 channels at a time)."""
    parts = [cv2.resize(a[..., i : i + 256], (w, h), interpolation=cv2.INTER_AREA) for i in range(0, a.shape[-1], 256)]
    return np.concatenate([p.reshape(h, w, -1) for p in parts], -1)


class Cells:
    """Cell features and labels of the photos, for the chosen blocks (concatenated on the coarsest grid)."""

    def __init__(self, folder: Path, layers: list[str], classes: list[str], ring: float) -> None:
        self.folder, self.layers, self.ring = folder, layers, ring
        self.cls_of = {c: i for i, c in enumerate(classes)}

    def features(self, rec: ImageRecord, s: float) -> np.ndarray:
        z = np.load(self.folder / f"{Path(rec.file).stem}.npz")
        ms = [z[f"{n}@{s}"].astype(np.float32) for n in self.layers]
        h, w = min(m.shape[0] for m in ms), min(m.shape[1] for m in ms)
        return np.concatenate([m if m.shape[:2] == (h, w) else _resize(m, w, h) for m in ms], -1)

    def labels(self, rec: ImageRecord, h: int, w: int) -> np.ndarray:
        """(h, w): the class of the box a cell's centre is in, 0 background, -1 ignored (the ring)."""
        sx, sy = rec.width / w, rec.height / h
        X, Y = np.meshgrid((np.arange(w) + 0.5) * sx, (np.arange(h) + 0.5) * sy)
        lab = np.zeros((h, w), np.int32)
        for b in rec.boxes:
            rx, ry = self.ring * sx + 0.25 * (b.x2 - b.x1), self.ring * sy + 0.25 * (b.y2 - b.y1)
            lab[(X >= b.x1 - rx) & (X <= b.x2 + rx) & (Y >= b.y1 - ry) & (Y <= b.y2 + ry) & (lab == 0)] = -1
        for b in rec.boxes:
            inside = (X >= b.x1) & (X <= b.x2) & (Y >= b.y1) & (Y <= b.y2)
            if not inside.any():  # a logo smaller than a cell: the cell holding its centre
                inside[min(int((b.y1 + b.y2) / 2 / sy), h - 1), min(int((b.x1 + b.x2) / 2 / sx), w - 1)] = True
            lab[inside] = self.cls_of[b.label]
        return lab


def train_head(cells: Cells, recs: list[ImageRecord], n_classes: int, args: argparse.Namespace, seed: int):
    """The cell head: standardized features -> (MLP) -> softmax, AdamW under a cosine decay."""
    import keras

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for r in recs:
        for s in SCALES:
            f = cells.features(r, s)
            lab = cells.labels(r, *f.shape[:2]).ravel()
            pos, neg = np.flatnonzero(lab > 0), np.flatnonzero(lab == 0)
            idx = np.concatenate([pos, rng.choice(neg, min(args.neg, len(neg)), replace=False)])
            xs.append(f.reshape(-1, f.shape[-1])[idx].astype(np.float16))
            ys.append(lab[idx])
    x, y = np.concatenate(xs).astype(np.float32), np.concatenate(ys)
    mean, std = x.mean(0), x.std(0) + 1e-3
    x = (x - mean) / std
    counts = np.bincount(y, minlength=n_classes)
    weights = {i: float(len(y) / (n_classes * max(c, 1))) ** 0.5 for i, c in enumerate(counts)}
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.l2(args.l2)
    inp = keras.Input((x.shape[1],))
    h = inp
    if args.hidden:
        h = keras.layers.Dense(args.hidden, activation="relu", kernel_regularizer=reg)(h)
        h = keras.layers.Dropout(0.3)(h)
    model = keras.Model(inp, keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg)(h))
    steps = args.epochs * int(np.ceil(len(y) / 512))
    model.compile(
        keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(2e-3, steps), weight_decay=1e-4),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    hist = model.fit(x, y, batch_size=512, epochs=args.epochs, class_weight=weights, verbose=0)
    info = {
        "cells": int(len(y)),
        "background_cells": int(counts[0]),
        "train_accuracy": round(hist.history["accuracy"][-1], 4),
    }
    return (lambda f: model.predict((f - mean) / std, verbose=0, batch_size=8192)), info


def cell_maps(cells: Cells, predict, rec: ImageRecord) -> list[tuple[float, np.ndarray]]:
    out = []
    for s in SCALES:
        f = cells.features(rec, s)
        out.append((s, predict(f.reshape(-1, f.shape[-1])).reshape(*f.shape[:2], -1)))
    return out


def result_of(rec: ImageRecord, maps: list, classes: list[str], alpha: float, tau: float) -> ScanResult:
    """Image scores (best cell) and boxes: the engine's box stage (`LevelCanvas.boxes`: components of
    the peak-normalised map) on each upsampled class map, NMS over the scales."""
    dets, best = [], np.zeros(len(classes))
    for s, p in maps:
        best = np.maximum(best, p.reshape(-1, p.shape[-1]).max(0))
        for c in range(1, len(classes)):
            peak = float(p[..., c].max())
            if peak < 0.05:
                continue
            canvas = LevelCanvas(rec.width, rec.height, 1.0)
            canvas.score = cv2.resize(p[..., c], (rec.width, rec.height), interpolation=cv2.INTER_LINEAR)
            canvas.norm = canvas.score / peak
            dets += canvas.boxes(classes[c], s, max(tau / peak, alpha), min_area_px=0.0)
    boxes = Detections.from_list(dets).with_nms(0.5).to_list() if dets else []
    scores = {c: float(best[i]) for i, c in enumerate(classes) if i}
    return ScanResult(path=rec.file, width=rec.width, height=rec.height, scores=scores, boxes=boxes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folds", default="0,1,2,3,4")
    ap.add_argument("--layers", default="mixed6", help=f"comma-separated, of {','.join(BLOCKS)}")
    ap.add_argument("--hidden", type=int, default=0, help="0: a linear head (the classifier's form); N: an MLP")
    ap.add_argument("--neg", type=int, default=200, help="background cells sampled per photo and scale")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--l2", type=float, default=1e-4)
    ap.add_argument("--ring", type=float, default=1.0, help="ignored cells around a box, in cells (+ a quarter box)")
    ap.add_argument("--alpha", default="0.2,0.3,0.5", help="box threshold as a fraction of the map's peak")
    ap.add_argument("--tau", type=float, default=0.1, help="box threshold floor (a probability)")
    ap.add_argument("--maps", default="~/.cache/logo-detector/flickr27/cell-maps")
    args = ap.parse_args()
    if not (F.FLICKR.is_dir() and F.WEIGHTS.is_file()):
        raise SystemExit(f"needs {F.FLICKR} and {F.WEIGHTS} (the workplace's shared/ folder)")
    t0 = time.monotonic()
    full, photo_labels = F.load_photos(Path("~/.cache/logo-detector/flickr27").expanduser())
    folder = Path(args.maps).expanduser()
    compute_maps(full, folder)
    brands = sorted(full.labels)
    classes = ["background", *brands]
    cells = Cells(folder, args.layers.split(","), classes, args.ring)
    alphas = [float(a) for a in args.alpha.split(",")]
    pairs: dict[float, dict[int, list]] = {a: {} for a in alphas}
    folds = {}
    for k in [int(x) for x in args.folds.split(",")]:
        train = [r for r in full.images if F.fold_of(r.file) != k and split_of(r.file, F.VAL_PERCENT, 0.0) != "val"]
        predict, info = train_head(cells, train, len(classes), args, seed=k)
        test = [r for r in full.images if F.fold_of(r.file) == k]
        for r in test:
            maps = cell_maps(cells, predict, r)
            for a in alphas:
                pairs[a].setdefault(k, []).append((r, result_of(r, maps, classes, a, args.tau)))
        folds[k] = {**info, "train_photos": len(train), "test_photos": len(test)}
        print(f"fold {k}: {folds[k]}, {time.monotonic() - t0:.0f} s", flush=True)

    def means(pp: list) -> dict:
        """Means over the brands with a logo among these photos (fold 1 has no ferrari photo: its recall
        would read 1.0)."""
        out = {}
        for neg in ("all", "none"):
            per = [F.brand_metrics(pp, b, photo_labels, neg) for b in brands]
            out[f"negatives_{neg}"] = {m: F._mean([x[m] for x in per if x["with_logo"]]) for m in METRICS}
        return out

    # "pooled": every fold's test photos ranked together, as benchmarks/flickr27.py does (each fold has its
    # own model, so their scores are not on one scale: this is the stricter figure); "fold mean": the mean
    # of each fold's own figures (fold 0's is the one earlier sessions compared on).
    rows, per_fold = {}, {}
    for a, by_fold in pairs.items():
        fold_rows = {k: means(pp) for k, pp in by_fold.items()}
        per_fold[f"alpha {a:g}"] = fold_rows
        rows[f"alpha {a:g}"] = {
            "pooled": means([p for pp in by_fold.values() for p in pp]),
            "fold mean": {
                neg: {m: F._mean([fr[neg][m] for fr in fold_rows.values()]) for m in METRICS}
                for neg in ("negatives_all", "negatives_none")
            },
        }
    variant = f"{args.layers} hidden {args.hidden} folds {args.folds}"
    print(f"\n{variant}, {sum(f['test_photos'] for f in folds.values())} test photos")
    print("| box threshold | folds | negatives | " + " | ".join(METRICS) + " |\n" + "|---" * (len(METRICS) + 3) + "|")
    for name, r in rows.items():
        for how, by_neg in r.items():
            for neg, m in by_neg.items():
                print(f"| {name} | {how} | {neg[10:]} | " + " | ".join(f"{m[x]:.3f}" for x in METRICS) + " |")
    out = F.ROOT / "benchmarks" / "results" / "cell_head.json"
    earlier = json.loads(out.read_text()) if out.is_file() else {}
    earlier[variant] = {
        "args": vars(args),
        "weights": f"pretrained stand-in {F.WEIGHTS.name} (../shared/weights/README.md)",
        "folds": folds,
        "brands": brands,
        "means_over_brands": rows,
        "per_fold_means_over_brands": per_fold,
        "minutes": round((time.monotonic() - t0) / 60, 1),
    }
    out.write_text(json.dumps(earlier, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
