"""Stage unit tests, options (detector/options.py, pipeline/options.py, console/flags.py, serve/options.py):
each option is declared once and every front end follows that declaration. No model, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import typer
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cli
from detector.backends import ModelSource
from detector.console.flags import with_flags
from detector.engines import EngineOptions
from detector.images import ImageLimits
from detector.options import Declared, OptionError, declared, from_text
from detector.pipeline.options import OPTION_NAMES, ScanOptions
from detector.results.folders import FolderOptions
from detector.results.writer import OutputOptions
from detector.serve.config import ServeConfig
from detector.serve.errors import ApiError
from detector.serve.options import API_OPTIONS, parse_options
from detector.synth.scenes import SceneConfig
from detector.synth.synthesize import SynthConfig
from detector.training.config import TrainConfig
from detector.video.decode import VideoOptions

SCAN = {d.name: d for d in declared(ScanOptions)}
#: The settings each command is built from (cli.py's signatures).
COMMANDS = {
    "scan": (ModelSource, ScanOptions, ImageLimits, FolderOptions, OutputOptions, VideoOptions, EngineOptions),
    "serve": (ModelSource, ServeConfig),
    "synth": (SynthConfig, SceneConfig),
    "train": (TrainConfig,),
}


@pytest.fixture(scope="module")
def commands() -> dict[str, Any]:
    """detect's commands as Click builds them (Typer's own copy of Click: duck-typed here)."""
    return dict(typer.main.get_command(cli.app).commands)


def _flag(d: Declared) -> str:
    return d.spec.flag or "--" + d.name.replace("_", "-")


# -- the CLI's flags are the declarations -----------------------------------------------------------


def test_every_cli_scan_option_is_a_flag_of_detect_scan(commands: dict[str, Any]) -> None:
    params = {p.name: p for p in commands["scan"].params}
    for d in SCAN.values():
        if not d.spec.cli:
            continue
        assert d.name in params, f"ScanOptions.{d.name} is not a flag of detect scan"
        p = params[d.name]
        assert p.param_type_name == "option" and _flag(d) in p.opts, (d.name, p.opts)
        assert p.help == d.spec.help
        if d.kind is bool:  # a switch; both ways unless the declaration names its one flag
            assert p.is_flag and p.secondary_opts == ([] if d.spec.flag else ["--no-" + _flag(d)[2:]])
        if d.spec.parse is None and d.kind in (int, float, str, bool):
            assert p.default == d.default
    # `boxes` is declared cli=False: no flag of that name comes from ScanOptions (--boxes is the output's)
    assert not SCAN["boxes"].spec.cli and "boxes" not in params


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_declared_cli_field_is_a_flag_of_its_command(commands: dict[str, Any], command: str) -> None:
    params = {p.name: p for p in commands[command].params}
    offered = {d.name for cls in COMMANDS[command] for d in declared(cls) if d.spec.cli}
    for cls in COMMANDS[command]:
        for d in declared(cls):
            if not d.spec.cli:  # not a flag, unless another settings class of the command offers that name
                assert d.name not in params or d.name in offered, (cls.__name__, d.name)
                continue
            assert d.name in params, f"{cls.__name__}.{d.name} is not a flag of detect {command}"
            p = params[d.name]
            if d.spec.argument:
                assert p.param_type_name == "argument"
            else:
                assert p.param_type_name == "option" and _flag(d) in p.opts, (cls.__name__, d.name, p.opts)


def test_every_api_option_is_a_server_parameter() -> None:
    api = {d.name for d in SCAN.values() if d.spec.api}
    assert api == set(API_OPTIONS)
    for name in api:
        assert API_OPTIONS[name] is SCAN[name] or API_OPTIONS[name] == SCAN[name]
    assert {"scales", "overlap", "heatmap", "boxes", "merge", "mode", "max_windows"} <= api
    assert "batch_size" not in API_OPTIONS  # a server setting, not a request's


# -- bad values name the option, never a flag -------------------------------------------------------


def _bad_values(d: Declared) -> list[object]:
    """Values outside the declaration, worked out from its kind and range."""
    if d.name == "scales":
        return [(math.nan,), (0.0,), (17.0,), (0.5,) * 9, "1,0.5", ()]
    if d.kind is bool:
        return ["yes", 1, None]
    if d.spec.choices:
        return ["no-such-" + d.name, 3, None]
    lo, hi = d.spec.range or (-math.inf, math.inf)
    out: list[object] = [hi * 2 + 1, lo - 1, "1", True]
    if d.kind is float:
        out += [math.nan, math.inf]
    else:
        out += [1.5]
    if not d.optional:
        out.append(None)
    return out


@pytest.mark.parametrize("name", OPTION_NAMES)
def test_bad_values_raise_an_option_error_naming_the_field(name: str) -> None:
    for value in _bad_values(SCAN[name]):
        with pytest.raises(OptionError) as e:
            ScanOptions(**{name: value})
        assert e.value.option == name, (name, value)
        msg = str(e.value)
        assert msg.startswith(name + " ") and "--" not in msg and "\n" not in msg, msg


def test_options_checked_together_name_the_option_too() -> None:
    with pytest.raises(OptionError) as e:
        ScanOptions(min_logo=50, max_logo=10)
    assert e.value.option == "min_logo" and "--" not in str(e.value)
    with pytest.raises(OptionError) as e:
        ScanOptions(scales=(1.0, 3.0))  # above the default max_upscale 2
    assert e.value.option == "scales" and "max_upscale" in str(e.value) and "--" not in str(e.value)
    assert ScanOptions(scales=(3.0,), max_upscale=3).scales == (3.0,)


@settings(max_examples=80, deadline=None)
@given(
    name=st.sampled_from(OPTION_NAMES),
    value=st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=10),
)
def test_any_value_is_valid_or_an_option_error(name: str, value: object) -> None:
    try:
        opts = ScanOptions(**{name: value})
    except OptionError as e:
        assert e.option == name and "--" not in str(e)
        return
    again = getattr(opts, name)  # a valid value is stored normalized and checks again
    assert dataclasses.replace(opts, **{name: again}) == opts


# -- text from the user -----------------------------------------------------------------------------


def test_from_text_parses_what_users_type() -> None:
    heat, scales, overlap, windows = SCAN["heatmap"], SCAN["scales"], SCAN["overlap"], SCAN["max_windows"]
    for text, want in [("true", True), ("1", True), ("Yes", True), (" on ", True), ("0", False), ("false", False)]:
        assert from_text(heat, text) is want, text
    with pytest.raises(OptionError) as e:
        from_text(heat, "maybe")
    assert e.value.option == "heatmap"
    assert from_text(scales, "1,0.5") == (1.0, 0.5) and from_text(scales, " 2 ") == (2.0,)
    with pytest.raises(OptionError) as e:
        from_text(scales, "1,x")
    assert e.value.option == "scales" and "--" not in str(e.value)
    assert from_text(overlap, "0.25") == 0.25 and from_text(windows, "12") == 12
    with pytest.raises(OptionError) as e:
        from_text(windows, "1.5")
    assert e.value.option == "max_windows"
    assert from_text(SCAN["merge"], " fuse ") == "fuse"
    # a shared `parse` that raises for "value" is renamed to the field (SceneConfig's pairs)
    jpeg = {d.name: d for d in declared(SceneConfig)}["jpeg_quality"]
    assert from_text(jpeg, "35,95") == (35, 95)
    with pytest.raises(OptionError) as e:
        from_text(jpeg, "35")
    assert e.value.option == "jpeg_quality"


# -- the CLI and the server, through their own parsers ---------------------------------------------


def test_flags_build_the_settings_dataclass() -> None:
    got: list[ScanOptions] = []
    app = typer.Typer()

    @app.command()
    @with_flags
    def go(opts: ScanOptions) -> None:
        got.append(opts)

    runner = CliRunner()
    r = runner.invoke(app, ["--scales", "1,0.5", "--overlap", "0.25", "--no-box-calibration", "--merge", "fuse"])
    assert r.exit_code == 0, r.output
    assert got == [ScanOptions(scales=(1.0, 0.5), overlap=0.25, box_calibration=False, merge="fuse")]
    r = runner.invoke(app, [])
    assert r.exit_code == 0 and got[-1] == ScanOptions()
    r = runner.invoke(app, ["--overlap", "0.999"])
    assert isinstance(r.exception, OptionError) and r.exception.option == "overlap"


@pytest.mark.parametrize(
    "args,option",
    [(["--overlap", "0.999"], "overlap"), (["--scales", "1,x"], "scales"), (["--workers", "0"], "workers")],
)
def test_detect_scan_says_one_line_naming_the_option(args: list[str], option: str) -> None:
    r = CliRunner().invoke(cli.app, ["scan", "no-such-image.png", *args])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {option} "), r.output


BASE = ScanOptions(max_windows=256)


def test_parse_options_merges_query_and_form() -> None:
    got = parse_options({"scales": "1,0.5", "heatmap": "true", "merge": "fuse"}, {"merge": "finest"}, BASE)
    assert got.scan.scales == (1.0, 0.5) and got.heatmap is True and got.scan.heatmap is True
    assert got.scan.merge == "finest"  # a form field wins over the query
    assert got.scan.max_windows == 256  # the server's budget when the request does not say
    plain = parse_options({}, {"max_windows": "100", "overlap": " "}, BASE)
    assert plain.scan.max_windows == 100 and plain.scan.overlap == BASE.overlap and plain.heatmap is False


def test_parse_options_rejects_unknown_names_with_a_422() -> None:
    with pytest.raises(ApiError) as e:
        parse_options({"overlapp": "0.5"}, {}, BASE)
    assert e.value.status == 422 and e.value.code == "invalid_option" and "overlapp" in e.value.message
    with pytest.raises(ApiError) as e:
        parse_options({}, {"batch_size": "8"}, BASE)  # a declared option, but not one a request may set
    assert e.value.status == 422 and "batch_size" in e.value.message


@pytest.mark.parametrize(
    "query,option",
    [({"overlap": "0.9"}, "overlap"), ({"heatmap": "maybe"}, "heatmap"), ({"scales": "1,x"}, "scales")],
)
def test_parse_options_bad_values_are_422s_naming_the_option(query: dict, option: str) -> None:
    with pytest.raises(ApiError) as e:
        parse_options(query, {}, BASE)
    assert e.value.status == 422 and e.value.message.startswith(option + " ")
    with pytest.raises(ApiError) as e:
        parse_options({"max_windows": "257"}, {}, BASE)  # a request may only lower the server's budget
    assert e.value.status == 422 and e.value.message.startswith("max_windows ")
