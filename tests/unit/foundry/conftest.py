"""Helpers for the foundry unit tests: a state record and a pid that is surely dead."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stackctl.foundry.state import ServerState
from stackctl.lock import start_time


def _make_state(state_dir, pid: int | None = None, port: int = 52180) -> ServerState:
    """pid None: this pytest process — alive but not a server, so it reads as stale."""
    root = f"http://127.0.0.1:{port}"
    return ServerState(
        pid=os.getpid() if pid is None else pid, port=port, root_url=root,
        urls=(root, f"http://172.17.0.1:{port}"), model_id="tiny-chat-generic-cpu:1",
        model_alias="tiny-chat", model_source="local", chat_base_url=root + "/catalogs/local/v1",
        openai_base_urls=(root + "/v1", root + "/catalogs/local/v1"), log_path=str(state_dir / "foundry" / "server.log"),
        started_at="2026-01-01T00:00:00+00:00", state_dir=str(state_dir), model_path="/m",
        create_time=start_time(os.getpid() if pid is None else pid),  # as the server records its own
    )


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def make_state():
    """make_state(state_dir, pid=None (this process: alive), port=52180) -> ServerState."""
    return _make_state


@pytest.fixture
def server_pid():
    """A live process whose command line names the server module (as the real one does)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "stackctl.foundry.server"], stdin=subprocess.PIPE
    )
    yield proc.pid
    proc.stdin.close()
    proc.wait(timeout=10)
