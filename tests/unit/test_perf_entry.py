"""`python perf/NAME.py` as the structure check and a forgetful user type it: with a
Python that lacks the project's packages the script re-runs itself in the project's
venv, and with no venv anywhere it says in one line how to make one (exit 1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.plugins.common import REPO

BASE = getattr(sys, "_base_executable", sys.executable)  # the interpreter under the venv


def _run(script: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("STACK_VENV", "PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([BASE, str(script), "--help"], capture_output=True, text=True, timeout=60,
                          check=False, env={**clean, **env}, cwd=script.parent.parent)


def test_a_bare_python_reruns_the_benchmark_in_the_projects_venv():
    done = _run(REPO / "perf" / "exporter.py", STACK_VENV=str(Path(sys.executable).parents[1]))
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_with_no_venv_anywhere_it_says_how_to_make_one(tmp_path):
    shutil.copytree(REPO / "perf", tmp_path / "perf")  # a checkout with no .venv
    done = _run(tmp_path / "perf" / "exporter.py")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line
    assert "run `./stack test` once (it makes .venv), then `.venv/bin/python perf/exporter.py`" in done.stderr
