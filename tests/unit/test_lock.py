"""The stack lock (stackctl/lock.py) between real processes: contended, stale, released.

Each holder is a real Python process taking the lock through the library; the
test waits for conditions ("held" on its stdout, its exit), never for time."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from stackctl.config import envfile
from stackctl.errors import StackError
from stackctl.lock import Holder, clock, lock_path, locked, stack_lock
from tests.plugins.common import REPO, readable_copy

HOLDER = """
import sys, threading
from stackctl.lock import stack_lock
with stack_lock(sys.argv[1], sys.argv[2]) as lock:
    print("held", lock.took_over.pid if lock.took_over else "-", flush=True)
    sys.stdin.readline()  # released when the test writes a line (or on a signal)
print("released", flush=True)
"""


def start_holder(state_dir: Path, command: str = "invoke up") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(state_dir), command], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # a condition: the holder says it holds the lock
    assert line.startswith("held"), proc.stderr.read()
    return proc


def finish(proc: subprocess.Popen) -> str:
    out, _err = proc.communicate(input="\n", timeout=30)
    assert proc.returncode == 0, _err
    return out


def record(state_dir: Path) -> Holder | None:
    return Holder.parse(lock_path(state_dir).read_text())


def test_second_process_is_refused_naming_the_first_which_carries_on(tmp_path):
    holder = start_holder(tmp_path)
    try:
        held = record(tmp_path)
        assert held is not None and held.pid == holder.pid and held.command == "invoke up"
        with pytest.raises(StackError) as err, stack_lock(tmp_path, "invoke backup"):
            pytest.fail("took a lock another process holds")
        assert str(err.value) == (
            f"`invoke up` (pid {holder.pid}, started {clock(held.since)}) holds the stack lock — wait for it "
            f"to finish, or stop it (Ctrl-C in its terminal, or `kill {holder.pid}`), then retry"
        )
        assert "\n" not in str(err.value)
        assert record(tmp_path) == held  # the refused one changed nothing
        assert holder.poll() is None
    finally:
        out = finish(holder)
    assert out.strip() == "released"
    assert lock_path(tmp_path).read_text() == ""  # a clean release leaves no record
    with stack_lock(tmp_path, "invoke backup") as lock:  # and the next command gets it
        assert lock.took_over is None


def test_a_dead_holders_lock_is_taken_over_with_a_note(tmp_path):
    holder = start_holder(tmp_path)
    dead = record(tmp_path)
    holder.kill()  # SIGKILL: no finally runs, the record stays behind
    holder.wait(timeout=30)
    notes = []
    with stack_lock(tmp_path, "invoke down", on_note=notes.append) as lock:
        assert lock.took_over == dead
        assert record(tmp_path).pid == os.getpid()
    assert notes == [
        f"took over the stack lock from `invoke up` (pid {dead.pid}, started {clock(dead.since)}), "
        "which ended without releasing it"
    ]


def test_released_on_error(tmp_path):
    with pytest.raises(StackError, match="boom"), stack_lock(tmp_path, "invoke restore"):
        raise StackError("boom")
    assert lock_path(tmp_path).read_text() == ""
    other = start_holder(tmp_path, "invoke up")  # another process takes it at once, no note
    try:
        assert record(tmp_path).pid == other.pid
    finally:
        finish(other)


def test_released_on_ctrl_c(tmp_path):
    holder = start_holder(tmp_path)
    holder.send_signal(signal.SIGINT)
    _out, err = holder.communicate(timeout=30)
    assert "KeyboardInterrupt" in err
    assert lock_path(tmp_path).read_text() == ""  # released by the block, not left for a take-over
    with stack_lock(tmp_path, "invoke up") as lock:
        assert lock.took_over is None


def test_reentrant_within_one_process(tmp_path):
    """`restore` brings the stack up, which may serve Foundry: one lock, taken once."""
    with stack_lock(tmp_path, "invoke restore") as outer:
        with stack_lock(tmp_path, "foundry.serve") as inner:
            assert inner is outer
        assert record(tmp_path).command == "invoke restore"  # the inner block did not release it
        with pytest.raises(StackError, match=r"^`invoke restore` \(pid \d+, started "):
            _take_in_another_process(tmp_path)
    assert lock_path(tmp_path).read_text() == ""


def _take_in_another_process(state_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-c", HOLDER, str(state_dir), "invoke up"], cwd=REPO, input="\n",
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise StackError(done.stderr.strip().splitlines()[-1].removeprefix("stackctl.errors.StackError: "))


def test_task_decorator_takes_the_lock_of_the_settings_state_dir(tmp_path, monkeypatch):
    env_file = tmp_path / "test.env"
    envfile.ensure(env_file)
    state_dir = tmp_path / "state"
    env_file.write_text(env_file.read_text().replace("STACK_STATE_DIR=.state", f"STACK_STATE_DIR={state_dir}"))
    monkeypatch.setenv("STACK_ENV_FILE", str(env_file))
    seen = []

    @locked("backup")
    def task(c, value):
        seen.append((value, record(state_dir)))
        raise StackError("failed inside the task")

    with pytest.raises(StackError, match="failed inside the task"):
        task(None, 7)
    (value, held), = seen
    assert value == 7 and held.command == "invoke backup" and held.pid == os.getpid()
    assert lock_path(state_dir).read_text() == ""
    assert lock_path(state_dir).stat().st_mode & 0o777 == 0o600
    assert state_dir.stat().st_mode & 0o777 == 0o700


def test_holder_record_garbage_is_no_holder():
    for text in ("", "{", "[]", '{"pid": "x"}'):
        assert Holder.parse(text) is None
    assert clock(time.time()).count(":") == 2


def test_a_lock_another_user_owns_is_one_clear_error_not_a_traceback(tmp_path):
    """`sudo invoke up` left root's 0700 state dir: another user gets a StackError (the
    edge prints it as one line), never a PermissionError."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root to run a process as another user (nobody)")
    state_dir = Path(tempfile.mkdtemp(prefix="stackctl-root-state-"))  # root's, 0700
    # the clone (and pytest's tmp_path) may sit in 0700 directories: a copy under /tmp
    readable = Path(tempfile.mkdtemp(prefix="stackctl-readable-"))
    readable.chmod(0o755)
    try:
        with stack_lock(state_dir, "invoke up"):
            pass
        code = ("import sys\nfrom stackctl.errors import StackError\nfrom stackctl.lock import stack_lock\n"
                "try:\n    with stack_lock(sys.argv[1], 'invoke down'): pass\n"
                "except StackError as err:\n    print(err)\n")
        copy, env = readable_copy(readable)
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                               "-c", code, str(state_dir)], cwd=copy, capture_output=True, text=True,
                              timeout=60, check=False, env=dict(os.environ, HOME="/tmp", **env))
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert done.stdout.startswith(f"cannot open the stack lock {state_dir}/stack.lock: ")
        assert done.stdout.rstrip().endswith(f"(`sudo chown -R $USER {state_dir}`), then retry")
    finally:
        shutil.rmtree(state_dir)
        shutil.rmtree(readable)


def test_a_env_without_its_secrets_does_not_stop_the_up_that_generates_them(tmp_path, monkeypatch):
    """`cp .env.example .env` then `./stack up`: the lock must not demand the secrets `up`
    is about to generate (it read .env strictly and refused with "run ./stack up")."""
    env = tmp_path / ".env"
    env.write_text((REPO / ".env.example").read_text().replace("STACK_STATE_DIR=.state",
                                                                f"STACK_STATE_DIR={tmp_path / 'st'}"))
    monkeypatch.setenv("STACK_ENV_FILE", str(env))
    ran = []

    @locked("up")
    def up():
        ran.append(lock_path(tmp_path / "st").exists())

    up()
    assert ran == [True]
