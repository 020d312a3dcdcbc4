"""#3: `./stack logs SERVICE` (the documented form) works: the wrapper turns the
optional service name into `--service SERVICE` (invoke's positional arguments are
mandatory), and every other form reaches invoke unchanged. The wrapper runs for real
against a stand-in venv whose `invoke` prints the argv it got; one more run goes
through the real venv to see the unknown-service error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _key() -> str:
    parts = b"".join((REPO / p).read_bytes() for p in
                     ("pyproject.toml", "exporter/pyproject.toml", "gateway/pyproject.toml"))
    py = subprocess.run(["python3", "-V"], capture_output=True, text=True).stdout
    import hashlib

    return hashlib.sha256(parts + py.encode()).hexdigest()[:16]


@pytest.fixture
def echo_venv(tmp_path):
    """A venv the wrapper accepts as up to date, whose invoke echoes its arguments."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    inv = venv / "bin" / "invoke"
    inv.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    inv.chmod(0o755)
    (venv / ".stack-key").write_text(_key() + "\n")
    (venv / ".stack-extras").write_text("foundry,bench\n")
    (venv / ".stack-src").write_text(str(REPO) + "\n")
    return venv


def real_venv() -> Path:
    """The venv running these tests, if the wrapper would take it as is: never let the
    wrapper reinstall it or re-point its editable installs at another checkout."""
    venv = Path(sys.executable).parent.parent
    if (venv / ".stack-key").read_text().strip() != _key() or \
            (venv / ".stack-src").read_text().strip() != str(REPO):
        pytest.fail(f"{venv} is not current for this checkout {REPO}; run ./stack once from it")
    return venv


def run_stack(venv: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, STACK_VENV=str(venv))
    return subprocess.run([str(REPO / "stack"), *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("typed", "invoked"), [
    (["logs", "open-webui"], ["logs", "--service", "open-webui"]),
    (["logs", "open-webui", "-f"], ["logs", "--service", "open-webui", "-f"]),
    (["logs", "-f", "exporter"], ["logs", "-f", "--service", "exporter"]),
    (["logs", "--tail", "5", "prometheus"], ["logs", "--tail", "5", "--service", "prometheus"]),
    (["logs"], ["logs"]),
    (["logs", "-f"], ["logs", "-f"]),
    (["logs", "--service", "exporter"], ["logs", "--service", "exporter"]),
    (["status"], ["status"]),
])
def test_wrapper_translates_the_service_name(echo_venv, typed, invoked):
    cp = run_stack(echo_venv, *typed)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == invoked


def test_unknown_service_is_one_line_listing_the_services(tmp_path):
    venv = real_venv()
    cp = subprocess.run([str(REPO / "stack"), "logs", "no-such-service"], capture_output=True, text=True,
                        env=dict(os.environ, STACK_VENV=str(venv), STACK_ENV_FILE=str(tmp_path / ".env")),
                        timeout=120, stdin=subprocess.DEVNULL)
    assert cp.returncode == 2
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1, cp.stderr
    assert lines[0].startswith("error: no service 'no-such-service' — choose one of open-webui, exporter")


def test_a_known_service_passes_parsing(tmp_path):
    """Before the wrapper translated it: `No idea what 'open-webui' is!`."""
    venv = real_venv()
    cp = subprocess.run([str(REPO / "stack"), "logs", "open-webui"], capture_output=True, text=True,
                        env=dict(os.environ, STACK_VENV=str(venv), STACK_ENV_FILE=str(tmp_path / ".env")),
                        timeout=120, stdin=subprocess.DEVNULL)
    assert "No idea what" not in cp.stderr
    assert cp.stderr.strip().splitlines() == [
        f"error: {tmp_path / '.env'} does not exist — run `./stack up` (it creates it) and retry"]


def test_windows_twin_translates_the_same_and_keeps_crlf():
    text = (REPO / "stack.cmd").read_bytes()
    assert b"\r\n" in text and b"\n" not in text.replace(b"\r\n", b"")
    body = text.decode()
    assert 'logs --service "%arg2%"' in body and "set \"STACK_CWD=%CD%\"" in body
