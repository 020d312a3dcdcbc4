"""The stack lock between real `invoke` processes (issue 13, item 6).

A mutating command refuses at once, in one line naming the holder, while another
holds the lock; read-only commands do not take it; the holder carries on. Each
wait is a condition with a deadline (tests/plugins/common.py wait_for)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from stackctl.config import envfile
from stackctl.foundry import lifecycle
from stackctl.foundry.paths import FoundryPaths
from stackctl.foundry.state import SERVER_MODULE, read
from stackctl.lock import Holder, clock, lock_path
from tests.integration.foundry.test_tasks import INVOKE, invoke, one_line_error
from tests.plugins.common import REPO, free_port, wait_for
from tests.plugins.foundry import TINY_MODEL_DIR, TINY_MODEL_ID

HOLDER = """
import sys
from stackctl.lock import stack_lock
with stack_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    sys.stdin.readline()
"""

MUTATING = (["up"], ["down"], ["backup"], ["restore", "no-such.tar.gz", "--yes"], ["upgrade"],
            ["foundry.serve", "--model-path", str(TINY_MODEL_DIR)], ["foundry.stop"])


def own_env(state_dir: Path) -> Path:
    """The env file `invoke(state_dir, …)` uses, made first with a project name of this
    test's own: should the lock ever fail to refuse, `down` stops no one else's stack."""
    env_file = state_dir.parent / f"{state_dir.name}.env"
    envfile.ensure(env_file)
    text = env_file.read_text().replace("STACK_STATE_DIR=.state", f"STACK_STATE_DIR={state_dir}")
    env_file.write_text(text.replace("COMPOSE_PROJECT_NAME=foundry-chat", f"COMPOSE_PROJECT_NAME=lockprobe{os.getpid()}"))
    return env_file


def refusal(holder: Holder) -> str:
    return (f"error: `{holder.command}` (pid {holder.pid}, started {clock(holder.since)}) holds the stack lock — "
            f"wait for it to finish, or stop it (Ctrl-C in its terminal, or `kill {holder.pid}`), then retry")


def test_every_mutating_command_refuses_while_up_holds_the_lock_and_up_carries_on(tmp_path):
    assert f"COMPOSE_PROJECT_NAME=lockprobe{os.getpid()}" in own_env(tmp_path).read_text()
    up = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), "invoke up"], cwd=REPO,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert up.stdout.readline() == "held\n"
        holder = Holder.parse(lock_path(tmp_path).read_text())
        assert holder.pid == up.pid
        for args in MUTATING:
            done = invoke(tmp_path, *args)
            assert done.returncode == 1, (args, done.stderr)
            assert one_line_error(done) == refusal(holder), args
        # read-only commands do not take the lock (they fail here for their own reason)
        for args in (["foundry.status"], ["status"], ["logs"]):
            done = invoke(tmp_path, *args)
            assert "holds the stack lock" not in done.stderr + done.stdout, args
        assert up.poll() is None and Holder.parse(lock_path(tmp_path).read_text()) == holder
    finally:
        up.stdin.write("\n")
        up.stdin.close()
        assert up.wait(timeout=30) == 0
    after = invoke(tmp_path, "foundry.stop")  # free again: it runs, and finds no server
    assert one_line_error(after).startswith("error: no embedded Foundry Local server is running in ")


def test_a_second_foundry_serve_is_refused_naming_the_first_which_still_serves(tmp_path):
    """Two real `invoke foundry.serve`: the first is paused (SIGSTOP) while it holds
    the lock, so the second surely meets it; resumed, the first serves."""
    env_file = own_env(tmp_path)
    port = free_port()
    first = subprocess.Popen(
        [INVOKE, "-r", str(REPO), "foundry.serve", "--model-path", str(TINY_MODEL_DIR), "--name", "tiny-chat",
         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, STACK_ENV_FILE=str(env_file)))
    try:
        holder = wait_for(lambda: _holder_is(tmp_path, first.pid), "the first serve holding the lock",
                          timeout=60, interval=0.01)
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = invoke(tmp_path, "foundry.serve", "--model-path", str(TINY_MODEL_DIR), "--port", str(free_port()))
            assert one_line_error(second) == refusal(holder)
            assert holder.command == "invoke foundry.serve"
        finally:
            os.kill(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert f"Foundry Local is serving {TINY_MODEL_ID}" in out
        st = read(FoundryPaths(tmp_path))
        assert st is not None and st.port == port
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait(timeout=30)
        if read(FoundryPaths(tmp_path)) is not None:
            lifecycle.stop(tmp_path)
    assert lock_path(tmp_path).read_text() == ""


def _holder_is(state_dir: Path, pid: int) -> Holder | None:
    path = lock_path(state_dir)
    holder = Holder.parse(path.read_text()) if path.exists() else None
    return holder if holder is not None and holder.pid == pid else None


def test_ctrl_c_releases_the_lock_and_leaves_no_half_started_server(tmp_path):
    """SIGINT to a real `invoke foundry.serve` while it holds the lock and its server is
    starting: the lock is released cleanly (no record left for a take-over) and the
    half-started server is stopped (its own process identity, from its first event)."""
    env_file = own_env(tmp_path)
    serve = subprocess.Popen(
        [INVOKE, "-r", str(REPO), "foundry.serve", "--model-path", str(TINY_MODEL_DIR), "--port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, STACK_ENV_FILE=str(env_file)))
    try:
        wait_for(lambda: _holder_is(tmp_path, serve.pid) and server_processes(tmp_path),
                 "serve holding the lock, its server process started", timeout=60, interval=0.01)
        serve.send_signal(signal.SIGINT)
        _out, err = serve.communicate(timeout=120)
        assert serve.returncode != 0, err
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(timeout=30)
    assert lock_path(tmp_path).read_text() == ""
    assert server_processes(tmp_path) == []
    assert "received SIGTERM" in FoundryPaths(tmp_path).log_file.read_text()  # it was started, then stopped
    assert read(FoundryPaths(tmp_path)) is None
    after = invoke(tmp_path, "foundry.stop")  # the lock is free: it runs and finds nothing
    assert one_line_error(after).startswith("error: no embedded Foundry Local server is running in ")


def server_processes(state_dir: Path) -> list[int]:
    """Live embedded-server processes of ``state_dir`` (psutil: `ps` output is cut at $COLUMNS)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        argv = proc.info["cmdline"] or []
        if SERVER_MODULE in argv and str(state_dir) in argv and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc.pid)
    return found
