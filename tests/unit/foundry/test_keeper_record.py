"""The keep record and the keeper's decisions, without a runtime (the integration tier
runs the keeper with the real one)."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from dataclasses import replace

from stackctl.foundry import keeper, supervisor
from stackctl.foundry.paths import FoundryPaths


def test_the_record_says_what_to_serve_privately_and_round_trips(tmp_path, make_state):
    paths = FoundryPaths(tmp_path)
    paths.root.mkdir(parents=True)
    keeper.remember(paths, make_state(tmp_path, port=40001))
    rec = keeper.read(paths)
    # Loopback and the bridge address the server was started with, in order.
    assert rec == {"version": 1, "port": 40001, "alias": "tiny-chat", "model_path": "/m",
                   "hosts": ["127.0.0.1", "172.17.0.1"]}
    assert stat.S_IMODE(paths.keep_file.stat().st_mode) == 0o600
    assert keeper.server_argv(paths, rec, python="py") == [
        "py", "-m", "stackctl.foundry.server", "--state-dir", str(tmp_path), "--port", "40001",
        "--alias", "tiny-chat", "--model-path", "/m", "--supervise", "--host", "127.0.0.1", "--host", "172.17.0.1"]
    keeper.forget(paths)
    assert keeper.read(paths) is None
    keeper.forget(paths)  # twice: nothing to forget is fine


def test_a_server_on_every_address_is_served_on_every_address_again(tmp_path, make_state):
    paths = FoundryPaths(tmp_path)
    paths.root.mkdir(parents=True)
    st = make_state(tmp_path)
    keeper.remember(paths, replace(st, urls=("http://127.0.0.1:52180", "http://0.0.0.0:52180")))
    assert keeper.read(paths)["hosts"] == ["0.0.0.0"]  # 0.0.0.0 with 127.0.0.1 would not bind


def test_garbage_or_another_version_is_nothing_to_keep(tmp_path):
    paths = FoundryPaths(tmp_path)
    paths.root.mkdir(parents=True)
    for text in ("{not json", "[]", '{"version": 2, "port": 1, "alias": "a", "hosts": []}',
                 '{"version": 1, "port": "1", "alias": "a", "hosts": []}', '{"version": 1}'):
        paths.keep_file.write_text(text)
        assert keeper.read(paths) is None, text
        assert keeper.healthy(paths), text


def test_healthy_when_nothing_to_keep_or_something_keeps_it(tmp_path, make_state, dead_pid):
    paths = FoundryPaths(tmp_path)
    paths.root.mkdir(parents=True)
    assert keeper.healthy(paths)  # no record
    keeper.remember(paths, make_state(tmp_path))
    assert not keeper.healthy(paths)  # a record, nothing alive
    supervisor.write_record(paths)  # this process as the supervisor: alive, same start time
    assert keeper.kept(paths) and keeper.healthy(paths)
    paths.supervisor_file.write_text(json.dumps({"pid": dead_pid, "create_time": 1.0, "boot_time": 1.0}))
    assert not keeper.kept(paths)  # a dead supervisor's record keeps nothing


def test_a_record_naming_a_missing_model_folder_is_said_once_and_not_retried_at_once(tmp_path, make_state, caplog):
    paths = FoundryPaths(tmp_path)
    paths.root.mkdir(parents=True)
    keeper.remember(paths, replace(make_state(tmp_path), model_path=str(tmp_path / "gone")))
    k = keeper.Keeper(paths, poll_s=0.01)
    with caplog.at_level("INFO", logger="stackctl.foundry.keeper"):
        k._look()
        k._look()
    assert k.child is None and k.not_before > 0
    said = [r.getMessage() for r in caplog.records if "not a folder" in r.getMessage()]
    assert len(said) == 1 and "FOUNDRY_KEEPER_MODEL_DIR" in said[0]


def test_the_heartbeat_is_touched_only_while_all_is_well(tmp_path, make_state):
    paths = FoundryPaths(tmp_path)
    paths.root.mkdir(parents=True)
    beat = tmp_path / "keeper.ok"
    k = keeper.Keeper(paths, heartbeat=beat)
    k._beat()  # nothing to keep: well
    assert beat.exists()
    os.utime(beat, (1.0, 1.0))
    keeper.remember(paths, make_state(tmp_path))  # something to keep, nothing keeps it
    k._beat()
    assert beat.stat().st_mtime == 1.0  # left to age: the health check turns unhealthy


def test_the_compose_health_check_reads_the_heartbeat_the_keeper_touches(tmp_path):
    """The same file and the same age bound on both sides, and the check itself works."""
    import subprocess

    import yaml

    from stackctl.config.settings import KEEPER
    from stackctl.config.stack import ROOT

    svc = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"][KEEPER.name]
    beat = svc["command"][svc["command"].index("--heartbeat") + 1]
    test = svc["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python3", "-S", "-c"] and f"'{beat}'" in test[4]
    assert f"> {keeper.HEARTBEAT_STALE_S:g})" in test[4]
    mine = tmp_path / "hb"
    code = test[4].replace(beat, str(mine))

    def check() -> int:
        return subprocess.run([sys.executable, "-S", "-c", code], capture_output=True).returncode

    assert check() == 1  # no heartbeat yet
    mine.touch()
    assert check() == 0
    os.utime(mine, (time.time() - keeper.HEARTBEAT_STALE_S - 5,) * 2)
    assert check() == 1


def test_an_unmounted_state_dir_is_one_line_and_exit_2(tmp_path, capsys):
    assert keeper.main(["--state-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "FOUNDRY_KEEPER_STATE_DIR" in err[0] and "./stack up" in err[0]


def _stack(tmp_path):
    from stackctl.config.stack import Stack

    return Stack(tmp_path, tmp_path / ".env", {"STACK_STATE_DIR": str(tmp_path / "state")})


def test_up_hands_its_own_server_to_the_keeper_on_linux(tmp_path, monkeypatch, make_state, server_pid):
    from types import SimpleNamespace

    from stackctl.foundry import state, view

    monkeypatch.setattr("sys.platform", "linux")
    paths = FoundryPaths((tmp_path / "state").resolve())
    state.write(paths, make_state(paths.state_dir, pid=server_pid))
    env = view.keep(_stack(tmp_path), SimpleNamespace(source="embedded"))
    assert keeper.read(paths)["port"] == 52180
    assert env["FOUNDRY_KEEPER_STATE_DIR"] == str(paths.state_dir) and env["FOUNDRY_KEEPER_MODEL_DIR"] == "/m"
    assert env["FOUNDRY_KEEPER_USER"] == f"{os.getuid()}:{os.getgid()}"


def test_your_own_foundry_gives_the_keeper_nothing_to_keep(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from stackctl.foundry import view

    monkeypatch.setattr("sys.platform", "linux")
    paths = FoundryPaths((tmp_path / "state").resolve())
    paths.root.mkdir(parents=True)
    paths.keep_file.write_text('{"version": 1, "port": 1, "alias": "a", "hosts": []}')  # from an earlier `up`
    env = view.keep(_stack(tmp_path), SimpleNamespace(source="cli"))
    assert keeper.read(paths) is None and not paths.keep_file.exists()
    assert env["FOUNDRY_KEEPER_MODEL_DIR"] == str(paths.root / "no-model")  # something real to mount
    assert (paths.root / "no-model").is_dir()


def test_off_linux_no_record_and_placeholders_compose_can_interpolate(tmp_path, monkeypatch, make_state, server_pid):
    from types import SimpleNamespace

    from stackctl.foundry import state, view

    monkeypatch.setattr("sys.platform", "win32")
    paths = FoundryPaths((tmp_path / "state").resolve())
    state.write(paths, make_state(paths.state_dir, pid=server_pid))
    env = view.keep(_stack(tmp_path), SimpleNamespace(source="embedded"))
    assert keeper.read(paths) is None
    assert set(env) == {"FOUNDRY_KEEPER_STATE_DIR", "FOUNDRY_KEEPER_MODEL_DIR", "FOUNDRY_KEEPER_USER"}
    assert all(env.values())


def test_status_says_what_the_keeper_keeps(tmp_path, monkeypatch, make_state):
    from stackctl.docker.engine import ServiceState
    from stackctl.lifecycle.ops import keeper_note

    monkeypatch.setattr("sys.platform", "linux")
    stack = _stack(tmp_path)
    up = {"foundry-keeper": ServiceState("foundry-keeper", "c", "running", "healthy", "i", 0, ())}
    assert keeper_note(stack, up) == {"foundry-keeper": "idle: the stack does not serve its own Foundry Local"}
    paths = FoundryPaths((tmp_path / "state").resolve())
    paths.root.mkdir(parents=True)
    keeper.remember(paths, make_state(paths.state_dir, port=40002))
    assert "keeps the embedded Foundry Local on 127.0.0.1:40002" in keeper_note(stack, up)["foundry-keeper"]
    for states in ({}, {"foundry-keeper": ServiceState("foundry-keeper", "c", "exited", "unhealthy", "i", 0, ())}):
        note = keeper_note(stack, states)["foundry-keeper"]
        assert note.startswith("not running: nothing would serve") and note.endswith("`./stack up` starts it")
    monkeypatch.setattr("sys.platform", "darwin")
    assert keeper_note(stack, up) == {}  # no keeper there


class _Exited:
    """A child supervisor that has exited with ``code``."""

    def __init__(self, code: int) -> None:
        self.code, self.pid = code, 4242

    def poll(self) -> int:
        return self.code


def test_a_start_that_never_became_ready_is_not_retried_at_once(tmp_path):
    """Failure path: a server that fails to start (port taken, broken model) must not be
    started again every second; one that had served is started again at once."""
    paths = FoundryPaths(tmp_path)
    paths.root.mkdir(parents=True)
    k = keeper.Keeper(paths, retry_s=30.0)
    k.child, k.started, k.served = _Exited(1), time.monotonic(), False
    k._watch_child()
    assert k.child is None and k.not_before >= time.monotonic() + 29
    k.child, k.started, k.served, k.not_before = _Exited(-9), time.monotonic(), True, 0.0
    k._watch_child()
    assert k.child is None and k.not_before == 0.0
