"""Result files: JSONL lines, CSV rows (one per box), COCO detections, Parquet rows (one per record)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from detector.errors import DetectorError
from detector.results.atomic import temp_beside
from detector.results.coco import coco_document
from detector.results.record import ScanResult, path_fields


def to_jsonl_line(r: ScanResult) -> str:
    return json.dumps(r.as_dict(), ensure_ascii=False) + "\n"


def to_csv(results: list[ScanResult]) -> str:
    """One row per box; an image without boxes (or with an error) still gets one row."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "has_logo", "label", "score", "x1", "y1", "x2", "y2", "scale", "error", "path_b64"])
    for r in results:
        err = "; ".join(r.errors)
        name = path_fields(r.path)
        path, b64 = name["path"], name.get("path_b64", "")
        if not r.boxes:
            w.writerow([path, r.has_logo, "", "", "", "", "", "", "", err, b64])
        for b in r.boxes:
            d = b.as_dict()
            w.writerow(
                [path, r.has_logo, d["label"], d["score"], d["x1"], d["y1"], d["x2"], d["y2"], d["scale"], err, b64]
            )
    return buf.getvalue()


def to_coco(results: list[ScanResult], labels: list[str]) -> dict[str, Any]:
    """COCO detection results with their image list (the form pycocotools' loadRes takes, plus images)."""
    entries = []
    for r in results:
        name = path_fields(r.path)
        entry: dict[str, Any] = {"file_name": name["path"], "width": r.width, "height": r.height}
        if "path_b64" in name:
            entry["path_b64"] = name["path_b64"]
        entries.append((entry, r.boxes))
    return coco_document(entries, labels, digits=1)


BOX_FIELDS = ("label", "score", "x1", "y1", "x2", "y2", "scale")
#: Rows per Parquet row group: memory stays flat (one group waits) however many images a scan has.
PARQUET_ROW_GROUP = 2048


def parquet_schema() -> Any:
    """The Arrow schema of a Parquet result file: the JSONL record's fields, typed (maps for the
    per-class numbers, lists of structs for boxes and exposure), so readers need no JSON parsing."""
    import pyarrow as pa

    floats, texts = pa.map_(pa.string(), pa.float64()), pa.list_(pa.string())
    box = pa.struct([(k, pa.string() if k == "label" else pa.float64()) for k in BOX_FIELDS])
    position = pa.struct([("x", pa.float64()), ("y", pa.float64()), ("zone", pa.string())])
    exposure = pa.struct(
        [("area_share", pa.float64()), ("position", position), ("edge_distance", pa.float64())]
        + [(k, pa.float64()) for k in ("sharpness", "laplacian_variance", "prominence")]
    )
    return pa.schema(
        [("schema", pa.string()), ("path", pa.string()), ("path_b64", pa.string())]
        + [("frame", pa.int64()), ("time_s", pa.float64()), ("width", pa.int64()), ("height", pa.int64())]
        + [("scores", floats), ("has_logo", pa.bool_()), ("labels", texts), ("boxes", pa.list_(box))]
        + [("errors", texts), ("notes", texts), ("timings_ms", floats)]
        + [("model", pa.map_(pa.string(), pa.string())), ("sha256", pa.string())]
        + [("exposure", pa.list_(exposure)), ("thresholds", floats)]
    )


class ParquetStream:
    """Image and frame records to one Parquet file, a row group at a time.

    Written to a hidden temporary file beside `path` and renamed over it by `close`, like the other
    document formats: a scan that stops leaves no half file (but keeps nothing either; JSONL is the
    resumable one)."""

    def __init__(self, path: Path) -> None:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DetectorError("--format parquet needs pyarrow: pip install 'logo-detector[parquet]'") from None
        self.path, self.schema, self.rows = path, parquet_schema(), []
        self.tmp = temp_beside(path)
        self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")

    def add(self, record: dict[str, Any]) -> None:
        self.rows.append(record)
        if len(self.rows) >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self._flush()
        self.writer.close()
        os.replace(self.tmp, self.path)
