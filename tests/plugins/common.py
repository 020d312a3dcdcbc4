"""Fixtures every tier may use."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host``: every socket stays bound until all are
    chosen, so the OS cannot hand the same port out twice (it does, one at a time)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def wait_for(check, what: str, timeout: float = 90.0, interval: float = 1.0):
    """Poll ``check`` until it returns something truthy and return that; fail naming
    ``what`` (and the last value or error) after ``timeout`` seconds. A condition
    with a deadline, never a bare sleep."""
    import time

    import docker.errors
    import httpx

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, KeyError, ValueError, docker.errors.NotFound) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"{what} not true after {timeout}s (last: {last!r})")


def readable_copy(dest: Path) -> tuple[Path, dict[str, str]]:
    """The project's code copied where any user can read it, for tests that run a command
    as another uid: a CI clone may sit in a 0700 directory only root can enter. Returns the
    copy's root (an invoke -r target) and the environment that makes its packages win."""
    import shutil

    root = dest / "project"
    root.mkdir(parents=True)
    shutil.copy2(REPO / "tasks.py", root / "tasks.py")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for pkg in ("stackctl", "exporter/foundry_exporter", "gateway/foundry_gateway"):
        if (REPO / pkg).is_dir():
            shutil.copytree(REPO / pkg, root / pkg, ignore=ignore)
    for p in (dest, *dest.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)
    path = os.pathsep.join(str(root / d) for d in ("", "exporter", "gateway"))
    return root, {"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}
