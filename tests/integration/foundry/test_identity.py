"""`invoke foundry.stop` signals only the embedded server it started (issue 13, item 4),
and escalates to SIGKILL for real when the server does not answer SIGTERM.

Strangers are real processes started here; the server is the real one (the tiny
model on the Foundry Local runtime). Every wait is a condition with a deadline."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from stackctl.config import envfile
from stackctl.foundry import lifecycle
from stackctl.foundry import state as state_mod
from stackctl.foundry.paths import FoundryPaths
from tests.integration.foundry.test_tasks import INVOKE, invoke, one_line_error
from tests.plugins.common import readable_copy, wait_for
from tests.plugins.foundry import serve_tiny_model

NOBODY = 65534


@pytest.fixture
def stranger():
    """`sleep 300`: a live process that is not the server; killed afterwards."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def lookalike(state_dir: Path) -> subprocess.Popen:
    """A process whose command line is the server's, down to --state-dir (another
    program that reused the pid could look exactly like this)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "-m", state_mod.SERVER_MODULE,
         "--state-dir", str(state_dir)], stdin=subprocess.PIPE)


def end(proc: subprocess.Popen) -> None:
    if proc.stdin:
        proc.stdin.close()
    proc.kill()
    proc.wait(timeout=10)


def alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def test_stop_never_signals_a_live_stranger_and_says_the_state_was_stale(tmp_path, stranger):
    served = serve_tiny_model(tmp_path)
    lifecycle.stop(tmp_path)
    paths = FoundryPaths(tmp_path)
    created = psutil.Process(stranger.pid).create_time()
    state_mod.write(paths, replace(served, pid=stranger.pid, create_time=created))  # its own true start time

    done = invoke(tmp_path, "foundry.stop")
    line = one_line_error(done)
    assert line.startswith(
        f"error: no embedded Foundry Local server is running in {paths.root} (removed a stale state file of pid "
        f"{stranger.pid}: pid {stranger.pid} runs `sleep 300`, not the embedded server; nothing was signalled) — "
    ), line
    assert alive(stranger)
    assert not paths.state_file.exists()


def test_a_pid_reused_after_the_server_died_is_never_signalled(tmp_path):
    served = serve_tiny_model(tmp_path)
    os.kill(served.pid, signal.SIGKILL)  # a crash: the state file stays behind
    wait_for(lambda: not state_mod.pid_alive(served.pid), "the killed server gone", timeout=30, interval=0.05)
    paths = FoundryPaths(tmp_path)
    heir = lookalike(tmp_path)
    try:
        # the pid is reused by a process that even runs the server module: only the start time differs
        state_mod.write(paths, replace(served, pid=heir.pid))
        assert psutil.Process(heir.pid).create_time() - served.create_time > 0
        status = invoke(tmp_path, "foundry.status")
        assert status.returncode == 1, status.stderr
        assert paths.state_file.exists() is False, (status.stdout, status.stderr)
        state_mod.write(paths, replace(served, pid=heir.pid))
        done = invoke(tmp_path, "foundry.stop")
        line = one_line_error(done)
        assert f"(removed a stale state file of pid {heir.pid}: pid {heir.pid} now belongs to another process (started " in line
        assert "; nothing was signalled)" in line
        assert alive(heir)
        assert not paths.state_file.exists()
    finally:
        end(heir)


def test_a_server_that_ignores_sigterm_is_killed_after_the_deadline_and_reported_as_forced(tmp_path):
    """SIGSTOP: the real server cannot act on SIGTERM (as when it hangs); SIGKILL still works."""
    served = serve_tiny_model(tmp_path)
    os.kill(served.pid, signal.SIGSTOP)
    done = invoke(tmp_path, "foundry.stop")
    assert done.returncode == 0, done.stderr
    assert f"Foundry Local server pid {served.pid} killed after the SIGTERM deadline in " in done.stdout
    seconds = float(done.stdout.rsplit(" in ", 1)[1].split()[0])
    assert seconds >= lifecycle.STOP_TIMEOUT_S  # SIGTERM had its full deadline first
    assert not state_mod.pid_alive(served.pid)
    assert not FoundryPaths(tmp_path).state_file.exists()
    log = FoundryPaths(tmp_path).log_file.read_text()
    assert "received SIGTERM" not in log.split("=== foundry.serve")[-1]  # it never handled the TERM


def test_another_users_server_gets_one_line_not_a_traceback():
    """Run as user nobody against a server-like process of root's: not signalled, the
    state file kept, one line saying whose it is."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root to run a command as another user (nobody)")
    work = Path(tempfile.mkdtemp(prefix="stackctl-other-user-"))
    try:
        work.chmod(0o755)
        state_dir = work / "state"
        state_dir.mkdir(mode=0o700)
        env_file = work / "test.env"
        envfile.ensure(env_file)
        env_file.write_text(env_file.read_text().replace("STACK_STATE_DIR=.state", f"STACK_STATE_DIR={state_dir}"))
        root_proc = lookalike(state_dir)  # root's
        try:
            paths = FoundryPaths(state_dir)
            st = state_mod.ServerState(
                pid=root_proc.pid, port=1, root_url="http://127.0.0.1:1", urls=("http://127.0.0.1:1",),
                model_id="m", model_alias="m", model_source="local", chat_base_url="http://127.0.0.1:1/v1",
                openai_base_urls=("http://127.0.0.1:1/v1",), log_path="", started_at="", state_dir=str(state_dir),
                create_time=psutil.Process(root_proc.pid).create_time())
            state_mod.write(paths, st)
            for p in (env_file, state_dir, *state_dir.rglob("*")):
                os.chown(p, NOBODY, NOBODY)
            copy, env = readable_copy(work / "readable")  # the clone itself may be 0700
            done = subprocess.run(  # setpriv: the venv's interpreter sits where Popen(user=) cannot exec it
                ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 INVOKE, "-r", str(copy), "foundry.stop"], capture_output=True, text=True, timeout=120, check=False,
                env=dict(os.environ, STACK_ENV_FILE=str(env_file), HOME=str(work), **env), cwd=work,
            )
            line = one_line_error(done)  # the hint's spelling of the command is console.cmd's
            assert line.startswith(
                f"error: the embedded Foundry Local server (pid {root_proc.pid}) belongs to user root, not to you "
                "— stop it as root (e.g. `sudo -u root "), line
            assert line.endswith("stack foundry.stop`)"), line
            assert done.returncode == 1
            assert alive(root_proc)
            assert state_mod.read(paths) == st  # nothing changed
        finally:
            end(root_proc)
    finally:
        shutil.rmtree(work)
