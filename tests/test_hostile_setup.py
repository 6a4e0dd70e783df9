"""`make test` sets up what the tests need on a fresh machine, as .ci/run used to do alone.

Before (commit 9ca9ee9) only .ci/run installed Chromium, so `make test` on a fresh machine failed in
test_page_in_headless_chromium although the README promises that it does all the set-up.
"""

from __future__ import annotations

import re
import subprocess

from tests.helpers import ROOT


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_make_test_installs_chromium_before_the_tests() -> None:
    plan = _make("-n", "test").stdout
    assert "apt-get install" in plan and "chromium" in plan
    assert plan.index("apt-get install") < plan.index("pytest")


def test_without_chromium_or_apt_it_says_what_to_run() -> None:
    r = _make("test-deps", "CHROMIUM=no-such-browser-here", "APT_GET=no-such-apt-get-here")
    assert r.returncode != 0
    assert "apt-get install -y chromium" in r.stderr and "DETECT_CHROMIUM" in r.stderr, r.stderr


def test_with_a_browser_present_it_installs_nothing() -> None:
    r = _make("test-deps", "CHROMIUM=sh", "APT_GET=no-such-apt-get-here")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)


def test_ci_runs_make_test_and_installs_nothing_the_makefile_does_not() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == "make test"
    for pkgs in re.findall(r"apt-get install\s+(?:-\S+\s+)*([^\n>|;&]+)", ci):
        for pkg in pkgs.split():
            assert pkg in makefile, f".ci/run apt-installs {pkg}, which the Makefile does not"
