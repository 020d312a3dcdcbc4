"""The supervisor's own logic, with a stand-in server (a sleeping Python function): the
back-off, and a stop request that lands in the fork window — the one moment when
neither the parent's bookkeeping nor the child's signal handlers are settled yet.
The real runtime under the supervisor: tests/integration/foundry/test_supervisor.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from stackctl.foundry import supervisor
from tests.plugins.common import REPO

# A stop (SIGTERM to the supervisor) arrives right after fork() returned in the parent,
# while the child still sleeps inside the fork wrapper with the parent's handlers. The
# supervisor must forward it to the child, and the child must die of it.
FORK_WINDOW = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from stackctl.foundry import supervisor
    from stackctl.foundry.paths import FoundryPaths

    paths = FoundryPaths(Path(sys.argv[1]))
    paths.root.mkdir(parents=True, exist_ok=True)
    real_fork = os.fork

    def fork():
        pid = real_fork()
        if pid == 0:
            time.sleep(0.3)  # the child lingers in the window, parent's handlers still installed
        else:
            Path(sys.argv[2]).write_text(str(pid))
            os.kill(os.getpid(), signal.SIGTERM)  # the stop request, before stop["child"] is set
            time.sleep(0.1)
        return pid

    os.fork = fork

    def run_server(fd):
        time.sleep(3600)  # a server that never exits by itself
        return 0

    sys.exit(supervisor.supervise(paths, run_server, None, lambda pid: True))
""")


def test_a_stop_in_the_fork_window_ends_the_new_child_and_the_supervisor(tmp_path):
    child_file = tmp_path / "child.pid"
    proc = subprocess.Popen([sys.executable, "-c", FORK_WINDOW, str(tmp_path / "state"), str(child_file)],
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])))
    try:
        code = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        code = None
        proc.kill()
        proc.wait()
    child = int(child_file.read_text())
    deadline = time.monotonic() + 10
    while code is not None and _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(child)
    if alive:
        os.kill(child, signal.SIGKILL)
    assert code == 0, "the supervisor did not stop (it waits for a child that never got the SIGTERM)"
    assert not alive, "the child forked in the window outlived its supervisor"

def _alive(pid: int) -> bool:
    """Running and not a zombie (the child was the supervisor's, never ours to reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(("current", "ran", "expected"), [
    (1.0, 0.5, 2.0), (16.0, 5.0, 30.0), (30.0, 5.0, 30.0), (30.0, supervisor.HEALTHY_RUN_S, 1.0)])
def test_back_off_doubles_to_its_cap_and_resets_after_a_healthy_run(current, ran, expected):
    assert supervisor.next_backoff(current, ran) == expected


def test_describe_names_the_signal_or_the_exit_code():
    assert supervisor.describe(signal.SIGKILL) == "signal SIGKILL"  # waitpid status of a SIGKILL death
    assert supervisor.describe(3 << 8) == "exit 3"
