"""Fixtures every tier may use."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"


def _outside_ephemeral_range() -> range:
    """Ports the kernel never hands out by itself: below (or above) its ephemeral range.

    A port the OS picked with ``bind(0)`` lies in that range, so once the test lets it
    go, any outgoing connection of the machine may take it as its local port before the
    stack binds it again (seen in CI: a ``down``/``up`` cycle lost Alertmanager's port to
    a connection, "bind: address already in use"). Ports outside the range are free
    until someone asks for them by number."""
    try:
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999  # Linux's default; elsewhere a guess that is merely less safe
    return range(max(1024, lo - 12000), lo) if lo - 1024 >= 4000 else range(hi + 1, 65536)


_HANDED_OUT: set[int] = set()  # never give the same port to two fixtures of one session


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host`` now, outside the kernel's ephemeral range
    (so no outgoing connection takes one between the test's choice and its use), never
    handed out before in this session."""
    import random

    pool = _outside_ephemeral_range()
    chosen: list[int] = []
    for _ in range(50 * n + 200):
        if len(chosen) == n:
            return chosen
        port = random.choice(pool)
        if port in _HANDED_OUT or port in chosen:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        chosen.append(port)
        _HANDED_OUT.add(port)
    if len(chosen) == n:
        return chosen
    raise RuntimeError(f"no {n} free ports on {host} in {pool.start}-{pool.stop - 1}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now, outside the ephemeral range (see free_ports)."""
    return free_ports(1, host)[0]


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
