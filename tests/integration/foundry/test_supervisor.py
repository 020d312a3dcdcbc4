"""The embedded server's supervisor with the real runtime (issue 15, "nothing left dead"):
a SIGKILLed server comes back on the same port with the same model and no command;
`foundry.stop` ends server and supervisor together, also between two restarts; a first
start that fails is not retried."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import psutil
import pytest

from stackctl.errors import StackError
from stackctl.foundry import lifecycle
from stackctl.foundry.paths import FoundryPaths
from stackctl.foundry.state import pid_alive, read
from stackctl.lock import start_time
from tests.plugins.common import free_port
from tests.plugins.foundry import TINY_MODEL_ALIAS, TINY_MODEL_DIR, TINY_MODEL_ID


def _serve(state_dir, port=None):
    return lifecycle.serve(state_dir, port=port or free_port(), model_path=str(TINY_MODEL_DIR),
                           name=TINY_MODEL_ALIAS, supervise=True)


def _chat(st) -> int:
    r = httpx.post(st.chat_base_url + "/chat/completions", timeout=30, json={
        "model": TINY_MODEL_ID, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
    return r.status_code


def _wait(cond, what: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    pytest.fail(f"not within {timeout:.0f} s: {what}")


def _supervisor_pid(state_dir) -> int:
    import json

    return json.loads(FoundryPaths(state_dir.resolve()).supervisor_file.read_text())["pid"]


def test_sigkilled_server_is_back_on_its_port_with_no_command_and_stop_ends_both(tmp_path):
    st = _serve(tmp_path)
    keeper = _supervisor_pid(tmp_path)
    try:
        assert _chat(st) == 200
        t0 = time.monotonic()
        os.kill(st.pid, signal.SIGKILL)
        again = _wait(lambda: (lambda s: s if s and s.pid != st.pid and pid_alive(s.pid) else None)(
            read(FoundryPaths(tmp_path.resolve()))), "a new server wrote its state", 60)
        _wait(lambda: _chat(again) == 200 if _answers(again) else False, "the new server chats", 60)
        recovered = time.monotonic() - t0
        print(f"\nSIGKILL → chatting again after {recovered:.1f} s (same port {again.port})")
        assert again.port == st.port and again.model_id == st.model_id
        log = FoundryPaths(tmp_path.resolve()).log_file.read_text()
        assert f"server pid {st.pid} died (signal SIGKILL)" in log and "restart 1" in log
    finally:
        result = lifecycle.stop(tmp_path)
    assert not pid_alive(result.pid) and not pid_alive(keeper)
    assert not FoundryPaths(tmp_path.resolve()).supervisor_file.exists()


def _answers(st) -> bool:
    try:
        return httpx.get(st.root_url + "/status", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_stop_between_two_restarts_leaves_nothing_to_come_back(tmp_path, monkeypatch):
    st = _serve(tmp_path)
    keeper = _supervisor_pid(tmp_path)
    os.kill(st.pid, signal.SIGKILL)
    _wait(lambda: not pid_alive(st.pid), "the server is gone", 10)
    # Within the 1 s back-off the server is down but its supervisor lives: stop must end it.
    lifecycle.stop(tmp_path)
    assert not pid_alive(keeper)
    time.sleep(3)  # longer than the back-off: nothing may start again
    st2 = read(FoundryPaths(tmp_path.resolve()))
    assert st2 is None or not pid_alive(st2.pid)
    with pytest.raises(StackError, match="no embedded Foundry Local server is running"):
        lifecycle.stop(tmp_path)


def test_serve_refuses_while_a_supervisor_restarts_the_server(tmp_path):
    st = _serve(tmp_path)
    try:
        os.kill(st.pid, signal.SIGSTOP)  # hold the server still, then kill it: its supervisor lives on
        os.kill(st.pid, signal.SIGKILL)
        _wait(lambda: start_time(st.pid) is None, "the server is gone", 10)
        with pytest.raises(StackError, match=r"already running|being restarted by its supervisor"):
            _serve(tmp_path, port=free_port())
    finally:
        lifecycle.stop(tmp_path)


def test_a_first_start_that_fails_is_not_retried(tmp_path):
    # Fails inside the server (the catalog does not answer), after the supervisor forked it.
    with pytest.raises(StackError):
        lifecycle.serve(tmp_path, port=free_port(), model="no-such-model", catalog_url="http://127.0.0.1:1",
                        supervise=True, startup_timeout=60)
    time.sleep(3)  # longer than the first back-off: nothing may start again
    assert not FoundryPaths(tmp_path.resolve()).supervisor_file.exists()
    assert read(FoundryPaths(tmp_path.resolve())) is None
    assert [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])] == []


def test_ctrl_c_inside_the_spawn_stops_server_and_supervisor(tmp_path, monkeypatch):
    """Ctrl-C lands inside Popen — the launcher is exec'd, but `serve` never got its handle
    (a CI run of stop 21 met exactly this): the server still announces itself on the status
    pipe, and both it and its supervisor are stopped; nothing comes back."""
    real_popen = subprocess.Popen

    def interrupted(*args, **kwargs):
        real_popen(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "Popen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _serve(tmp_path)
    monkeypatch.undo()
    paths = FoundryPaths(tmp_path.resolve())
    assert not paths.supervisor_file.exists() and read(paths) is None
    assert "received SIGTERM" in paths.log_file.read_text()  # it was started, then stopped
    time.sleep(2)  # longer than the first back-off: nothing may start again
    left = [p.pid for p in psutil.process_iter(["cmdline", "status"])
            if str(tmp_path) in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE]
    assert left == []
