"""Box datasets: images with labelled boxes, in COCO JSON, CSV and YOLO txt, and imports between them.

On disk a box dataset is a folder with `images/` (files or symlinks), `annotations.json` (COCO) and
`boxes.csv` (`file,label,x1,y1,x2,y2`, absolute pixel corners). Synthetic scenes and imported real
photos share it, so the tile cutter, `detect train` and the scan evaluation read one format.
Images without boxes are negatives; they appear in COCO's `images` and as no rows in the CSV.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from detector.errors import DatasetError
from detector.geometry import Box
from detector.images import is_image_path

ANNOTATIONS = "annotations.json"
BOXES_CSV = "boxes.csv"
IMAGES = "images"


@dataclass
class ImageRecord:
    file: str  # relative to the dataset's images/ folder
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)


@dataclass
class BoxDataset:
    root: Path
    images: list[ImageRecord]
    labels: list[str]

    def image_path(self, rec: ImageRecord) -> Path:
        return self.root / IMAGES / rec.file


def is_box_dataset(path: str | Path) -> bool:
    return (Path(path) / ANNOTATIONS).is_file()


def labels_of(images: Iterable[ImageRecord]) -> list[str]:
    return sorted({b.label for r in images for b in r.boxes})


# ---- COCO -------------------------------------------------------------------------------------------


def to_coco(images: list[ImageRecord], labels: list[str] | None = None) -> dict:
    """The box dataset's ground truth as COCO (the one writer, detector.results.coco)."""
    from detector.results.coco import coco_document

    entries = [({"file_name": rec.file, "width": rec.width, "height": rec.height}, rec.boxes) for rec in images]
    return coco_document(entries, labels or labels_of(images))


def from_coco(data: dict) -> list[ImageRecord]:
    try:
        names = {c["id"]: c["name"] for c in data["categories"]}
        recs = {im["id"]: ImageRecord(im["file_name"], int(im["width"]), int(im["height"])) for im in data["images"]}
        for a in data.get("annotations", []):
            x, y, w, h = a["bbox"]
            recs[a["image_id"]].boxes.append(Box(names[a["category_id"]], x, y, x + w, y + h))
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"not a COCO detection file (missing or bad field: {e})") from None
    return list(recs.values())


# ---- CSV --------------------------------------------------------------------------------------------

_LABEL_COLUMNS = ("label", "brand", "class", "category")


def write_csv(images: list[ImageRecord], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "x1", "y1", "x2", "y2"])
        for rec in images:
            for b in rec.boxes:
                w.writerow([rec.file, b.label, *(f"{v:g}" for v in (b.x1, b.y1, b.x2, b.y2))])


def read_csv(path: Path) -> dict[str, list[Box]]:
    """Rows `file,label,x1,y1,x2,y2` (the label column may be named brand/class/category; extra columns ignored)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        label_col = next((c for c in _LABEL_COLUMNS if c in cols), None)
        if "file" not in cols or label_col is None or not {"x1", "y1", "x2", "y2"} <= set(cols):
            raise DatasetError(f"{path}: expected columns file,label,x1,y1,x2,y2; found {','.join(cols)}")
        out: dict[str, list[Box]] = {}
        for n, row in enumerate(reader, start=2):
            try:
                box = Box(row[label_col], *(float(row[k]) for k in ("x1", "y1", "x2", "y2")))
            except (TypeError, ValueError):
                raise DatasetError(f"{path}:{n}: bad box coordinates") from None
            out.setdefault(row["file"], []).append(box)
    return out


# ---- YOLO -------------------------------------------------------------------------------------------


def write_yolo(images: list[ImageRecord], folder: Path, labels: list[str]) -> None:
    """One `<stem>.txt` per image: `class cx cy w h`, normalised; `classes.txt` lists the names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("\n".join(labels) + "\n")
    for rec in images:
        lines = [
            f"{labels.index(b.label)} {(b.x1 + b.x2) / 2 / rec.width:.6f} {(b.y1 + b.y2) / 2 / rec.height:.6f} "
            f"{b.width / rec.width:.6f} {b.height / rec.height:.6f}"
            for b in rec.boxes
        ]
        (folder / f"{Path(rec.file).stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def read_yolo(folder: Path, width: int, height: int, stem: str, labels: list[str]) -> list[Box]:
    path = folder / f"{stem}.txt"
    if not path.is_file():
        return []
    boxes = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            c, cx, cy, w, h = line.split()[:5]
            cx, cy, w, h = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
            boxes.append(Box(labels[int(c)], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        except (ValueError, IndexError):
            raise DatasetError(f"{path}:{n}: expected 'class cx cy w h' with a class in classes.txt") from None
    return boxes


# ---- the dataset folder ----------------------------------------------------------------------------


def write_box_dataset(root: Path, images: list[ImageRecord], labels: list[str] | None = None) -> BoxDataset:
    """Write annotations.json and boxes.csv for images already in root/images."""
    root.mkdir(parents=True, exist_ok=True)
    labels = labels or labels_of(images)
    (root / ANNOTATIONS).write_text(json.dumps(to_coco(images, labels), indent=1) + "\n")
    write_csv(images, root / BOXES_CSV)
    return BoxDataset(root, images, labels)


def read_box_dataset(root: str | Path) -> BoxDataset:
    root = Path(root)
    path = root / ANNOTATIONS
    if not path.is_file():
        raise DatasetError(f"{root}: not a box dataset (no {ANNOTATIONS}); see `detect synth` / `detect data import`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    images = from_coco(data)
    labels = [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])]
    return BoxDataset(root, images, labels)


def _read_image_labels(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        label_col = next((c for c in _LABEL_COLUMNS if c in cols), None)
        if "file" not in cols or label_col is None:
            raise DatasetError(f"{path}: expected columns file,label")
        return {row["file"]: row[label_col] for row in reader}


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # filesystems without symlinks: copy
        shutil.copy2(src, dst)


def _image_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112, 1)
            w, h = im.size
            return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def guess_format(source: Path) -> str:
    """The annotation format of `source`: a folder is YOLO, a .csv CSV, a .json COCO."""
    fmt = "yolo" if source.is_dir() else {".csv": "csv", ".json": "coco"}.get(source.suffix.lower(), "")
    if not fmt:
        raise DatasetError(f"{source}: cannot guess the format; pass --format csv|coco|yolo")
    return fmt


def import_box_dataset(
    source: Path,
    fmt: str | None,
    out: Path,
    images_dir: Path | None = None,
    include_unlabelled: bool = True,
    image_labels: Path | None = None,
    negative_labels: tuple[str, ...] = ("none", "no-logo"),
) -> tuple[BoxDataset, list[tuple[str, str]]]:
    """Import CSV / COCO / YOLO annotations into a box dataset at `out` (images are symlinked, not copied).

    Returns the dataset and the files skipped with reasons. With `include_unlabelled`, images in the
    image folder that have no boxes are kept as negatives. With `image_labels` (a CSV `file,label`, as
    FlickrLogos ships), only images labelled none/no-logo become negatives, and an image labelled with
    a brand but given no box is skipped rather than taught as "no logo".
    """
    fmt = fmt or guess_format(source)
    labels, images_dir, boxes = _read_annotations(Path(source), fmt, images_dir)
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: image folder not found (pass --images DIR)")
    files = sorted(
        p.relative_to(images_dir).as_posix() for p in images_dir.rglob("*") if p.is_file() and is_image_path(p)
    )
    skipped: list[tuple[str, str]] = []
    if boxes is not None:
        skipped += [
            (f, "listed in the annotations but not found in the image folder") for f in sorted(set(boxes) - set(files))
        ]
    keep = _Keep(_read_image_labels(image_labels) if image_labels else None, include_unlabelled, negative_labels)
    records_out: list[ImageRecord] = []
    for f in files:
        has = boxes.get(f) if boxes is not None else None
        if boxes is not None and not has and not keep.unboxed(f, skipped):
            continue
        size = _image_size(images_dir / f)
        if size is None:
            skipped.append((f, "not a readable image"))
            continue
        w, h = size
        if boxes is None:
            has = read_yolo(Path(source), w, h, Path(f).stem, labels)
            if not has and not include_unlabelled:
                continue
        clipped = [
            Box(b.label, max(0.0, b.x1), max(0.0, b.y1), min(float(w), b.x2), min(float(h), b.y2)) for b in has or []
        ]
        records_out.append(ImageRecord(f, w, h, [b for b in clipped if b.width > 1 and b.height > 1]))
        _link(images_dir / f, out / IMAGES / f)
    return write_box_dataset(out, records_out, labels), skipped


@dataclass(frozen=True)
class _Keep:
    """Which images without boxes an import keeps (as negatives)."""

    per_image: dict[str, str] | None  # file -> its image label (FlickrLogos' list), when given
    include_unlabelled: bool
    negative_labels: tuple[str, ...]

    def unboxed(self, f: str, skipped: list[tuple[str, str]]) -> bool:
        if self.per_image is None:
            return self.include_unlabelled
        if f not in self.per_image:
            return False
        if self.per_image[f] not in self.negative_labels:
            skipped.append((f, f"labelled {self.per_image[f]} but has no box"))
            return False
        return True


def _read_annotations(
    source: Path, fmt: str, images_dir: Path | None
) -> tuple[list[str], Path, dict[str, list[Box]] | None]:
    """(labels, image folder, boxes per file); boxes None for YOLO, read per image with its size."""
    if fmt == "coco":
        try:
            data = json.loads(source.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DatasetError(f"{source}: cannot read COCO JSON ({e})") from None
        labels = [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])]
        return labels, images_dir or source.parent / IMAGES, {r.file: r.boxes for r in from_coco(data)}
    if fmt == "csv":
        boxes = read_csv(source)
        return labels_of(ImageRecord(f, 0, 0, b) for f, b in boxes.items()), images_dir or source.parent / IMAGES, boxes
    if fmt == "yolo":
        classes = source / "classes.txt"
        if not classes.is_file():
            raise DatasetError(f"{source}: a YOLO folder needs classes.txt (one class name per line)")
        labels = [line.strip() for line in classes.read_text().splitlines() if line.strip()]
        return labels, images_dir or (source / IMAGES if (source / IMAGES).is_dir() else source), None
    raise DatasetError(f"unknown format '{fmt}': use csv, coco or yolo")
