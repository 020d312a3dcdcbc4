"""The Docker daemon as a reboot treats it: stopped, and started again as it was.

A test that restarts the daemon stops every container of every test stack with it;
the daemon is started with its own command line, detached from the test (it must
outlive it), and the test waits until it answers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest

from tests.plugins.common import wait_for


def dockerd() -> psutil.Process:
    """The daemon serving /var/run/docker.sock (not one a test started on another socket)."""
    for p in psutil.process_iter(["name", "cmdline"]):
        argv = p.info["cmdline"] or []
        if p.info["name"] == "dockerd" and not any(a.startswith(("--host", "-H")) for a in argv):
            return p
    pytest.fail("no dockerd serving /var/run/docker.sock found")


def stop() -> list[str]:
    """Stop the daemon as a shutdown does (SIGTERM: it stops the containers); its argv."""
    daemon = dockerd()
    argv = daemon.cmdline()
    daemon.terminate()
    daemon.wait(90)
    return argv


def start(argv: list[str], log: Path) -> None:
    with open(log, "ab") as out:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    wait_for(lambda: subprocess.run(["docker", "info"], capture_output=True).returncode == 0,
             "dockerd answers again", timeout=90)
