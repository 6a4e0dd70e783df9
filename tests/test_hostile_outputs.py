"""Nothing lost, in any name or state: non-UTF-8 names, torn JSONL lines, error records on resume,
single documents written whole.

Before (commit 9ca9ee9): a file name that is not valid UTF-8 aborted a folder scan with a traceback
(the files after it never scanned; `--format json --output F` left F empty); after a kill mid-line,
`--resume` glued the next record onto the fragment and one result was lost; every `--resume` wrote
the error records of bad files again.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.results.record import path_from_record
from detector.results.writer import repair_torn_tail, write_atomic
from tests.helpers import run_cli

LATIN1_NAME = b"caf\xe9 \xff.png"  # not UTF-8: what a camera or an old Windows share may leave


def _png(path: Path | bytes, seed: int) -> None:
    px = np.random.default_rng(seed).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, "PNG")
    with open(path, "wb") as f:
        f.write(buf.getvalue())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    _png(d / "a.png", 1)
    _png(os.fsencode(d) + b"/" + LATIN1_NAME, 2)
    _png(d / "снимок.png", 3)
    _png(d / "z.png", 4)
    return d


def _scan(model: Path, *args: str):
    return run_cli("scan", *args, "--model", str(model), "--scales", "1", timeout=300)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_non_utf8_names_are_kept_losslessly_in_every_format(exported_onnx, folder: Path, tmp_path: Path) -> None:
    model = exported_onnx.path
    out = tmp_path / "r.jsonl"
    r = _scan(model, str(folder), "--format", "jsonl", "--output", str(out))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    recs = _records(out)
    assert len(recs) == 4 and all(not x["errors"] for x in recs)
    odd = [x for x in recs if "path_b64" in x]
    assert len(odd) == 1 and base64.b64decode(odd[0]["path_b64"]).endswith(LATIN1_NAME)
    assert odd[0]["path"].endswith("caf\\xe9 \\xff.png")  # readable, and valid UTF-8
    assert os.path.exists(path_from_record(odd[0]))  # the exact name back
    assert sum("path_b64" not in x for x in recs) == 3

    doc = tmp_path / "r.json"
    assert _scan(model, str(folder), "--format", "json", "--output", str(doc)).returncode == 0
    assert len(json.loads(doc.read_text(encoding="utf-8"))) == 4
    table = tmp_path / "r.csv"
    assert _scan(model, str(folder), "--format", "csv", "--output", str(table)).returncode == 0
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert len(rows) >= 4 and sum(bool(x["path_b64"]) for x in rows if x["path"].endswith(".png")) >= 1
    coco = tmp_path / "r.coco.json"
    assert _scan(model, str(folder), "--format", "coco", "--output", str(coco)).returncode == 0
    assert len(json.loads(coco.read_text(encoding="utf-8"))["images"]) == 4
    text = _scan(model, str(folder))
    assert text.returncode == 0 and text.stdout.count("\n") >= 4 and "\\xe9" in text.stdout

    again = _scan(model, str(folder), "--format", "jsonl", "--output", str(out), "--resume")
    assert again.returncode == 0 and "(4 already done)" in again.stderr and len(_records(out)) == 4


def test_resume_repairs_a_torn_last_line(exported_onnx, folder: Path, tmp_path: Path) -> None:
    model = exported_onnx.path
    out = tmp_path / "r.jsonl"
    assert (
        _scan(model, str(folder / "a.png"), str(folder / "z.png"), "--format", "jsonl", "--output", str(out)).returncode
        == 0
    )
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(lines[0] + lines[1][: len(lines[1]) // 2])  # killed while writing z.png's record
    r = _scan(model, str(folder), "--format", "jsonl", "--output", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert "cut a torn last line" in r.stderr and "(1 already done)" in r.stderr
    recs = _records(out)  # every line parses
    names = sorted(Path(path_from_record(x)).name for x in recs)
    assert len(names) == 4 and names.count("z.png") == 1


def test_error_records_are_not_written_again_unless_the_file_changed(
    exported_onnx, folder: Path, tmp_path: Path
) -> None:
    model = exported_onnx.path
    (folder / "notes.jpg").write_text("not an image")
    os.mkfifo(folder / "pipe.jpg")
    os.symlink(folder / "nowhere.jpg", folder / "dangling.jpg")
    (folder / "big.png").write_bytes(b"\x89PNG" + b"\0" * (3 << 20))
    out = tmp_path / "r.jsonl"
    args = (str(folder), "--format", "jsonl", "--output", str(out), "--max-file-mb", "2")
    first = _scan(model, *args)
    assert first.returncode == 1, first.stderr  # some images failed
    recs = {Path(path_from_record(x)).name: x for x in _records(out)}
    assert len(recs) == 8
    assert "not a regular file (a FIFO)" in recs["pipe.jpg"]["errors"][0]
    assert "broken symbolic link" in recs["dangling.jpg"]["errors"][0]
    assert "file too large" in recs["big.png"]["errors"][0]
    assert "not an image" in recs["notes.jpg"]["errors"][0] and recs["notes.jpg"]["sha256"]

    second = _scan(model, *args, "--resume")
    assert second.returncode == 0 and "(8 already done)" in second.stderr, second.stderr
    assert len(_records(out)) == 8  # nothing written again

    _png(folder / "notes.jpg", 9)  # the bad file was fixed: it is scanned again, and only it
    third = _scan(model, *args, "--resume")
    assert third.returncode == 0 and "(7 already done)" in third.stderr, third.stderr
    recs = _records(out)
    assert len(recs) == 9 and not recs[-1]["errors"] and recs[-1]["path"].endswith("notes.jpg")


def test_torn_tail_repair_and_atomic_documents(tmp_path: Path) -> None:
    f = tmp_path / "r.jsonl"
    f.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": ')
    assert repair_torn_tail(f) == len(b'{"c": ') and f.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert repair_torn_tail(f) == 0
    f.write_bytes(b'{"no newline at all"')
    assert repair_torn_tail(f) > 0 and f.read_bytes() == b""

    doc = tmp_path / "out.json"
    doc.write_text("[]\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(doc, '["\udcff"]')  # a write that fails half-way leaves the old file whole
    assert doc.read_text() == "[]\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "r.jsonl"]
    write_atomic(doc, '["ok"]\n')
    assert json.loads(doc.read_text()) == ["ok"]
