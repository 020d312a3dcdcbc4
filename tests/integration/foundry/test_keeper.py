"""The keeper with the real runtime (issue 15, "after a reboot chat works again with no
command"). Here it runs as a host process, as its container runs it (same module, same
state dir); the e2e tier runs it in its container under the real daemon.

A reboot is simulated as the issue says: every process of the stack is killed (the
server and its supervisor, SIGKILL), then the keeper starts, as Docker starts its
container when the daemon comes back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx

from stackctl.foundry import keeper, lifecycle
from stackctl.foundry.paths import FoundryPaths
from stackctl.foundry.state import pid_alive, read
from stackctl.lock import stack_lock
from tests.plugins.common import REPO, free_port, wait_for
from tests.plugins.foundry import TINY_MODEL_ALIAS, TINY_MODEL_DIR, TINY_MODEL_ID


def _serve(state_dir):
    st = lifecycle.serve(state_dir, port=free_port(), model_path=str(TINY_MODEL_DIR), name=TINY_MODEL_ALIAS,
                         supervise=True)
    keeper.remember(FoundryPaths(state_dir.resolve()), st)  # what `up` does on Linux
    return st


def _supervisor_pid(paths: FoundryPaths) -> int | None:
    try:
        return json.loads(paths.supervisor_file.read_text())["pid"]
    except (OSError, ValueError):
        return None


def _kill_everything(paths: FoundryPaths, st) -> None:
    """The reboot: the supervisor and the server die at once, nobody cleans up."""
    sup = _supervisor_pid(paths)
    if sup:
        os.kill(sup, signal.SIGKILL)
    os.kill(st.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(st.pid) and not (sup and pid_alive(sup)), "both are gone", timeout=10, interval=0.1)


def _start_keeper(state_dir) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "exporter")]))
    return subprocess.Popen([sys.executable, "-m", "stackctl.foundry.keeper", "--state-dir", str(state_dir.resolve()),
                             "--poll", "0.2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop_keeper(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=40)
    return out


def _chats(st) -> bool:
    try:
        r = httpx.post(st.chat_base_url + "/chat/completions", timeout=30, json={
            "model": TINY_MODEL_ID, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
        return r.status_code == 200
    except httpx.HTTPError:
        return False


def _served(paths: FoundryPaths, not_pid: int):
    st = read(paths)
    return st if st is not None and st.pid != not_pid and pid_alive(st.pid) and _chats(st) else None


def test_after_a_reboot_the_keeper_serves_the_same_model_on_the_same_port(tmp_path):
    paths = FoundryPaths(tmp_path.resolve())
    st = _serve(tmp_path)
    _kill_everything(paths, st)
    t0 = time.monotonic()
    proc = _start_keeper(tmp_path)
    try:
        again = wait_for(lambda: _served(paths, st.pid), "chat works again after the keeper started", timeout=60, interval=0.1)
        print(f"\nkeeper started → chat works again after {time.monotonic() - t0:.1f} s, no command")
        assert (again.port, again.model_id) == (st.port, st.model_id)
        status = lifecycle.status(tmp_path)  # the host sees it as its own server, by pid
        assert status.running and status.answering and status.state.pid == again.pid
        assert f"({keeper.LABEL}): -m stackctl.foundry.server" in paths.log_file.read_text()
        kept_by = _supervisor_pid(paths)
        time.sleep(1.0)  # several looks of the keeper (--poll 0.2): it starts nothing more
        assert _supervisor_pid(paths) == kept_by and read(paths).pid == again.pid
    finally:
        out = _stop_keeper(proc)
    # docker stop (a shutdown): the server stops cleanly, the record stays for the next boot
    assert not pid_alive(again.pid) and read(paths) is None and keeper.read(paths) is not None, out
    assert "stopped the supervisor it started" in out and "exit 0)" in out, out

    proc = _start_keeper(tmp_path)  # the next boot
    try:
        third = wait_for(lambda: _served(paths, again.pid), "served again at the next boot", timeout=60, interval=0.1)
        lifecycle.stop(tmp_path)  # `foundry.stop` / `down`: the record goes first
        assert keeper.read(paths) is None and not pid_alive(third.pid)
        time.sleep(1.0)  # the keeper looks five times: nothing to keep, nothing started
        assert not keeper.kept(paths)
    finally:
        out = _stop_keeper(proc)
    assert "nothing to keep" in out, out


def test_a_kept_server_is_left_to_its_own_supervisor(tmp_path):
    """While the host's supervisor lives, a SIGKILLed server is its business: the keeper
    starts no second one (one port, one model, one server)."""
    paths = FoundryPaths(tmp_path.resolve())
    st = _serve(tmp_path)
    sup = _supervisor_pid(paths)
    proc = _start_keeper(tmp_path)
    try:
        time.sleep(1.0)
        os.kill(st.pid, signal.SIGKILL)
        again = wait_for(lambda: _served(paths, st.pid), "the host's supervisor restarted it", timeout=60, interval=0.1)
        assert _supervisor_pid(paths) == sup and pid_alive(sup)
        assert f"({keeper.LABEL})" not in paths.log_file.read_text()
    finally:
        out = _stop_keeper(proc)
        lifecycle.stop(tmp_path)
    assert not pid_alive(again.pid), out


def test_a_command_holding_the_stack_lock_makes_it_wait(tmp_path):
    """`up`, `down` and `foundry.serve` hold the lock while they change the server: the
    keeper never races them; it serves once the lock is free."""
    paths = FoundryPaths(tmp_path.resolve())
    st = _serve(tmp_path)
    _kill_everything(paths, st)
    with stack_lock(tmp_path.resolve(), "up"):  # the lock is per process: hold it here
        proc = _start_keeper(tmp_path)
        time.sleep(1.5)
        assert not keeper.kept(paths), "started while `up` held the lock"
    try:
        wait_for(lambda: _served(paths, st.pid), "served once the lock was released", timeout=60, interval=0.1)
        lifecycle.stop(tmp_path)
    finally:
        out = _stop_keeper(proc)
    # Said once per state, not once per look (7 looks in 1.5 s), the first naming the holder.
    # A second line may say the lock changed hands at the moment of its release (the
    # holder's record is emptied first): "another stack command holds the stack lock".
    waiting = [ln.split("] ", 1)[1] for ln in out.splitlines() if "waiting: " in ln]
    assert waiting and "`up` (pid" in waiting[0], out
    assert len(waiting) <= 2 and len(set(waiting)) == len(waiting), out
