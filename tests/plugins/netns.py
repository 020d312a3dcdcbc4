"""Hosts on one machine: network namespaces joined to this one by veth pairs.

Each :class:`Host` is a namespace with its own loopback and one address,
``10.213.<n>.2``, reachable from here (``10.213.<n>.1``) and from nowhere else; a
process started with :meth:`Host.spawn` sees only that network, as a program on
another machine would. Tests create and delete their own namespaces (root only:
CI runs as root) and send traffic only to them and to loopback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

SUBNET = "10.213"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Host:
    def __init__(self, n: int, tag: str) -> None:
        self.n = n
        self.name = f"fcs{tag}h{n}"  # namespace
        self.outer, self.inner = f"fcs{tag}o{n}", f"fcs{tag}i{n}"  # veth ends (<= 15 chars)
        self.address = f"{SUBNET}.{n}.2"
        self.procs: list[subprocess.Popen] = []

    def create(self) -> Host:
        self.delete()
        _ip("netns", "add", self.name)
        _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        _ip("link", "set", self.inner, "netns", self.name)
        _ip("addr", "add", f"{SUBNET}.{self.n}.1/24", "dev", self.outer)
        _ip("link", "set", self.outer, "up")
        self.run("ip", "addr", "add", f"{self.address}/24", "dev", self.inner)
        self.run("ip", "link", "set", self.inner, "up")
        self.run("ip", "link", "set", "lo", "up")
        return self

    def run(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], check=True,
                              capture_output=True, text=True, **kw)

    def spawn(self, argv: list[str], log: Path, env: dict[str, str] | None = None,
              ) -> subprocess.Popen:
        out = open(log, "ab")  # noqa: SIM115 -- the child's log, closed when it ends
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *argv], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        out.close()
        self.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        done = _ip("netns", "pids", self.name, check=False)
        return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []

    def delete(self) -> None:
        """Kill everything left in the namespace, then remove it (and its veth pair)."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM if time.monotonic() < deadline - 5
                            else signal.SIGKILL)
            time.sleep(0.2)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.outer, check=False)
