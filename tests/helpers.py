"""Small helpers shared by tests: running the real CLI in a subprocess, launching headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    # a wide console: rich wraps tables and titles at 80 columns, and xdist's temp paths are long
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
    )


CHROMIUM = os.environ.get("DETECT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHROMIUM_ARGS += ["--disable-component-update", "--disable-sync", "--no-first-run"]


def launch_chromium(playwright):  # noqa: ANN001, ANN201 - Playwright's objects, imported by the tests only
    """Debian's headless Chromium through Playwright (the pages' tests); a clear failure when it is missing."""
    import pytest

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's browser with `apt-get install -y chromium` "
            "(`make test` does this when run as root), or point DETECT_CHROMIUM at a Chromium binary"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
