"""Box datasets: CSV, COCO and YOLO imports round-trip to the same boxes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.data.boxes import ImageRecord, import_box_dataset, read_box_dataset, to_coco, write_csv, write_yolo
from detector.errors import DatasetError
from detector.geometry import Box
from tests.helpers import run_cli

RECORDS = [
    ImageRecord("a.jpg", 120, 80, [Box("acme", 10, 5, 50, 45), Box("zeta", 60.5, 10.25, 110, 70)]),
    ImageRecord("sub/b.png", 64, 96, [Box("acme", 0, 0, 64, 30)]),
    ImageRecord("c.jpg", 50, 50, []),
]


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    for rec in RECORDS:
        p = folder / rec.file
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), np.full((rec.height, rec.width, 3), 90, np.uint8))
    return folder


def _boxes(ds) -> dict[str, list[tuple]]:
    return {
        r.file: sorted((b.label, round(b.x1, 2), round(b.y1, 2), round(b.x2, 2), round(b.y2, 2)) for b in r.boxes)
        for r in ds.images
    }


def _expected() -> dict[str, list[tuple]]:
    return {r.file: sorted((b.label, b.x1, b.y1, b.x2, b.y2) for b in r.boxes) for r in RECORDS}


def test_csv_import_round_trips(tmp_path: Path, images: Path) -> None:
    write_csv(RECORDS, tmp_path / "boxes.csv")
    ds, skipped = import_box_dataset(tmp_path / "boxes.csv", "csv", tmp_path / "out", images)
    assert skipped == [] and _boxes(ds) == _expected()
    again = read_box_dataset(tmp_path / "out")
    assert _boxes(again) == _expected() and again.labels == ["acme", "zeta"]
    assert (tmp_path / "out" / "images" / "sub" / "b.png").is_file()
    rows = list(csv.DictReader(open(tmp_path / "out" / "boxes.csv")))
    assert len(rows) == 3 and rows[0]["file"] == "a.jpg"


def test_coco_import_round_trips(tmp_path: Path, images: Path) -> None:
    (tmp_path / "coco.json").write_text(json.dumps(to_coco(RECORDS)))
    ds, _ = import_box_dataset(tmp_path / "coco.json", "coco", tmp_path / "out", images)
    assert _boxes(ds) == _expected()
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert {c["name"] for c in coco["categories"]} == {"acme", "zeta"}
    assert coco["annotations"][1]["bbox"] == [60.5, 10.25, 49.5, 59.75]


def test_yolo_import_round_trips(tmp_path: Path, images: Path) -> None:
    write_yolo(RECORDS, tmp_path / "labels", ["acme", "zeta"])
    ds, _ = import_box_dataset(tmp_path / "labels", "yolo", tmp_path / "out", images)
    got = _boxes(ds)
    for f, want in _expected().items():
        assert [g[0] for g in got[f]] == [w[0] for w in want]
        np.testing.assert_allclose(
            [g[1:] for g in got[f]] or np.zeros((0, 4)), [w[1:] for w in want] or np.zeros((0, 4)), atol=0.01
        )


def test_image_labels_keep_only_true_negatives(tmp_path: Path, images: Path) -> None:
    write_csv(RECORDS[:1], tmp_path / "boxes.csv")  # b.png has a brand label but no box row
    (tmp_path / "labels.csv").write_text("file,label\na.jpg,acme\nsub/b.png,acme\nc.jpg,none\n")
    ds, skipped = import_box_dataset(
        tmp_path / "boxes.csv", "csv", tmp_path / "out", images, image_labels=tmp_path / "labels.csv"
    )
    assert [r.file for r in ds.images] == ["a.jpg", "c.jpg"]
    assert skipped == [("sub/b.png", "labelled acme but has no box")]


def test_missing_files_and_bad_csv_are_reported(tmp_path: Path, images: Path) -> None:
    rows = RECORDS + [ImageRecord("gone.jpg", 10, 10, [Box("acme", 1, 1, 5, 5)])]
    write_csv(rows, tmp_path / "boxes.csv")
    _, skipped = import_box_dataset(tmp_path / "boxes.csv", "csv", tmp_path / "out", images)
    assert ("gone.jpg", "listed in the annotations but not found in the image folder") in skipped
    (tmp_path / "bad.csv").write_text("name,x\n1,2\n")
    with pytest.raises(DatasetError, match="expected columns"):
        import_box_dataset(tmp_path / "bad.csv", "csv", tmp_path / "o2", images)


def test_cli_import_and_summary(tmp_path: Path, images: Path) -> None:
    write_csv(RECORDS, tmp_path / "boxes.csv")
    r = run_cli("data", "import", str(tmp_path / "boxes.csv"), "--images", str(images), "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert "acme" in r.stdout and "zeta" in r.stdout
    r = run_cli("data", str(tmp_path / "o"))
    assert r.returncode == 0 and "box dataset" in r.stdout and "no boxes (negatives)" in r.stdout
    r = run_cli("data", "import", str(tmp_path / "boxes.txt"), "--out", str(tmp_path / "o3"))
    assert r.returncode == 2 and "cannot guess the format" in r.stderr
