"""Fixtures every tier may use."""

from __future__ import annotations

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
