"""One validation of scan options, in the library: every option swept over hostile values.

Before (commit 9ca9ee9) `scales=nan|inf|1e9`, `min_logo=nan`, `max_logo=inf` and `overlap=0.999`
passed validation and crashed later (a traceback in the CLI, a 500 on the server), `scales=6` was
accepted (36x the work) and `--workers 0` was a traceback. Here every value either makes a valid
`ScanOptions`, which then scans a real image with the real model, or raises `OptionError` naming the
option. The same sweep against the running server is in tests/test_hostile.py.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.api import Detector
from detector.pipeline.options import OPTION_NAMES, OptionError, ScanOptions
from tests.helpers import run_cli

HOSTILE_VALUES = [
    math.nan,
    math.inf,
    -math.inf,
    0,
    0.0,
    -0.0,
    -1,
    1,
    2,
    6,
    0.999,
    1e9,
    1e308,
    10**30,
    1e-320,
    -1e-9,
    True,
    False,
    None,
    "",
    "1",
    "nan",
    "1,0.5",
    b"1",
    [],
    [1.0],
    [math.nan],
    (6.0,),
    [0.5] * 9,
    {},
    {1: 2},
    object(),
    np.float32(0.5),
    np.int64(3),
    np.array([0.5, 0.25]),
    "tiles",
    "dense",
    "nms",
    "gradcam++",
]
hostile = (
    st.sampled_from(HOSTILE_VALUES)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(10**20), 10**20)
    | st.text(max_size=12)
    | st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=10)
)


@pytest.fixture(scope="module")
def detector(trained_model: Path) -> Detector:
    return Detector.load(trained_model)


IMAGE = np.random.default_rng(5).integers(0, 256, (60, 90, 3), dtype=np.uint8)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(OPTION_NAMES), value=hostile)
def test_every_option_is_valid_or_a_clear_error(detector: Detector, name: str, value: object) -> None:
    try:
        opts = ScanOptions(**{name: value})
    except OptionError as e:
        assert e.option == name and str(e).startswith(name + " ") and "\n" not in str(e)
        return
    t0 = time.perf_counter()
    r = detector.scan(IMAGE, opts)  # a valid value scans: no crash, bounded work
    assert time.perf_counter() - t0 < 30 and r.width == 90
    assert r.timings_ms["tiles"] <= opts.max_windows


@pytest.mark.parametrize(
    "kwargs,option",
    [
        ({"scales": (math.nan,)}, "scales"),
        ({"scales": (math.inf,)}, "scales"),
        ({"scales": (1e9,)}, "scales"),
        ({"scales": (6.0,)}, "scales"),  # above max_upscale 2: 36x the work of scale 1
        ({"scales": tuple([0.5] * 9)}, "scales"),
        ({"min_logo": math.nan}, "min_logo"),
        ({"max_logo": math.inf}, "max_logo"),
        ({"min_logo": 50.0, "max_logo": 10.0}, "min_logo"),
        ({"overlap": 0.999}, "overlap"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_windows": 0}, "max_windows"),
        ({"max_upscale": math.nan}, "max_upscale"),
        ({"cam_threshold": 1.5}, "cam_threshold"),
    ],
)
def test_the_issues_values_are_refused(kwargs: dict, option: str) -> None:
    with pytest.raises(OptionError) as e:
        ScanOptions(**kwargs)
    assert e.value.option == option


def test_the_python_api_checks_options_it_is_given(detector: Detector) -> None:
    with pytest.raises(Exception, match="options must be a ScanOptions"):
        detector.scan(IMAGE, {"overlap": 0.999})  # type: ignore[arg-type]
    assert ScanOptions(scales=[1, 0.5]).scales == (1.0, 0.5)  # normalized to floats in a tuple


@pytest.mark.parametrize(
    "args,option",
    [
        (["--scales", "nan"], "scales"),
        (["--scales", "6"], "scales"),
        (["--scales", "1,x"], "scales"),
        (["--overlap", "0.999"], "overlap"),
        (["--min-logo", "nan"], "min_logo"),
        (["--max-logo", "inf"], "max_logo"),
        (["--workers", "0"], "workers"),
        (["--max-windows", "0"], "max_windows"),
        (["--max-file-mb", "nan"], "max_file_mb"),
    ],
)
def test_cli_gives_one_line_naming_the_option(exported_onnx, tmp_path: Path, args: list[str], option: str) -> None:
    img = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(IMAGE).save(img)
    r = run_cli("scan", str(img), "--model", str(exported_onnx.path), *args, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {option} "), r.stderr
    assert "Traceback" not in r.stderr
