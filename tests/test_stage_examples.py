"""The Examples in the public docstrings run: each module's doctests (the model-free ones; examples
that need a trained model or files are marked `+SKIP` and are shown, not run)."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

from tests.helpers import ROOT

MODULES = [
    "detector",
    "detector.options",
    "detector.pipeline.options",
    "detector.geometry",
    "detector.images",
    "detector.video.decode",
    "detector.results.writer",
    "detector.engines",
    "detector.api",
    "detector.backends",
    "detector.evaluation.calibrate",
    "detector.report.build",
    "detector.synth",
    "detector.synth.synthesize",
    "detector.training.config",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (run doctest -v)"


def test_public_api_is_importable_without_tensorflow() -> None:
    """`from detector import ...` of everything but train/export_model loads no TensorFlow (a fresh
    interpreter: the test session itself may hold TensorFlow already)."""
    code = (
        "import sys, detector\n"
        "[getattr(detector, n) for n in detector.__all__ if n not in ('train', 'export_model')]\n"
        "import cli\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr
