"""#11: `smoke --browser` installs what it needs: the project's `browser` extra goes
into the running venv (one line says so) when Playwright is missing; when that
cannot work, one error whose command runs as printed."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from rich.console import Console

from stackctl.checks import browser
from stackctl.console import Reporter
from stackctl.errors import StackError


def wide() -> Reporter:
    return Reporter(Console(file=io.StringIO(), width=1000, highlight=False))


def test_requirements_come_from_the_projects_browser_extra():
    assert browser.browser_requirements() == ["playwright>=1.49"]


def test_missing_playwright_is_installed_into_this_venv_saying_so_once():
    calls, rep = [], wide()

    def run(argv, **kw):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    browser.ensure_playwright(rep, have=lambda: False, run=run, python="/venv/bin/python")
    assert calls == [["/venv/bin/python", "-m", "pip", "install", "-q", "playwright>=1.49"]]
    lines = rep.console.file.getvalue().strip().splitlines()
    assert len(lines) == 1 and "installing Playwright for --browser into /venv" in lines[0]


def test_present_playwright_installs_nothing():
    browser.ensure_playwright(Reporter.quiet(), have=lambda: True, run=lambda *a, **k: pytest.fail("ran pip"))


def test_a_failed_install_prints_one_command_that_works_as_printed(tmp_path):
    def run(argv, **kw):
        return subprocess.CompletedProcess(argv, 1, "", "ERROR: No matching distribution found for playwright>=1.49\n")

    with pytest.raises(StackError) as err:
        browser.ensure_playwright(Reporter.quiet(), have=lambda: False, run=run, python=sys.executable)
    msg = str(err.value)
    assert err.value.exit_code == 2 and "No matching distribution" in msg
    printed = msg.split("run `", 1)[1].split("`", 1)[0]
    # as printed: the venv's own python, which exists; `--help` of the same pip is side-effect free
    argv = printed.split()
    assert argv[:4] == [sys.executable, "-m", "pip", "install"]
    assert subprocess.run([*argv[:4], "--help"], capture_output=True).returncode == 0
