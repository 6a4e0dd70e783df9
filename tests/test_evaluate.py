"""Evaluation of a really trained model: metrics, thresholds chosen on val, PR curve, CLI table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from detector.evaluation.tiles import evaluate
from detector.model.store import read_meta
from tests.helpers import run_cli


def test_evaluate_reports_and_stores_thresholds(trained_model: Path, scene_data: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    before = read_meta(model).thresholds["demo-logo"]
    res = evaluate(model, scene_data / "tiles", "test", target_precision=0.99)
    r = res.report
    assert r["split"] == "test" and r["n"] == sum(m["support"] for m in r["per_class"].values())
    logo = r["per_class"]["demo-logo"]
    assert logo["average_precision"] > 0.8
    cm = r["confusion_matrix"]["rows_true_cols_pred"]
    assert sum(map(sum, cm)) == r["n"]
    tuned = r["threshold_tuning"]["per_class"]["demo-logo"]
    after = read_meta(model).thresholds["demo-logo"]
    assert after == tuned["threshold"] and after >= before  # a stricter precision target never lowers it
    if tuned["reached"]:
        assert tuned["val_precision"] >= 0.99
    assert json.loads(res.report_path.read_text())["per_class"]["demo-logo"] == logo
    with Image.open(res.pr_curve_path) as png:
        assert png.format == "PNG" and png.size[0] > 300


def test_cli_evaluate_prints_table_beside_the_original_project(
    trained_model: Path, scene_data: Path, tmp_path: Path
) -> None:
    r = run_cli(
        "evaluate", str(trained_model), str(scene_data / "tiles"), "--split", "val", "--report-dir", str(tmp_path)
    )
    assert r.returncode == 0, r.stderr
    for text in ("demo-logo", "precision", "original project", "77.0%", "40.0%", "confusion matrix"):
        assert text in r.stdout
    assert (tmp_path / "report-val.json").is_file() and (tmp_path / "pr-curve-val.png").is_file()


def test_evaluate_rejects_unknown_classes(trained_model: Path, scene_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    shutil.copytree(scene_data / "tiles", data)
    (data / "demo-logo").rename(data / "other-brand")
    r = run_cli("evaluate", str(trained_model), str(data))
    assert r.returncode == 2 and "other-brand" in r.stderr and "Traceback" not in r.stderr
