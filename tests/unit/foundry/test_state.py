"""The state file: round trip, garbage, stale (dead pid) cleanup, zombies."""

import subprocess
import sys
import time
from pathlib import Path

from stackctl.foundry import state
from stackctl.foundry.paths import FoundryPaths


def test_roundtrip_is_exact(tmp_path, make_state, server_pid):
    paths = FoundryPaths(tmp_path)
    st = make_state(tmp_path, pid=server_pid)
    state.write(paths, st)
    assert paths.state_file == tmp_path / "foundry" / "server.json"
    assert state.read(paths) == st
    assert state.read_live(paths) == (st, None)


def test_garbage_reads_as_no_state_and_is_removed(tmp_path):
    paths = FoundryPaths(tmp_path)
    paths.root.mkdir(parents=True)
    for text in ("{not json", '{"version": 99}', '{"version": 1, "pid": 5}', "[]"):
        paths.state_file.write_text(text)
        assert state.read(paths) is None
        assert state.read_live(paths) == (None, None)
        assert not paths.state_file.exists()


def test_stale_state_is_removed_and_reported(tmp_path, dead_pid, make_state):
    paths = FoundryPaths(tmp_path)
    stale = make_state(tmp_path, pid=dead_pid)
    state.write(paths, stale)
    assert state.read_live(paths) == (None, stale)
    assert not paths.state_file.exists()


def test_remove_only_when_it_still_names_the_pid(tmp_path, make_state):
    paths = FoundryPaths(tmp_path)
    st = make_state(tmp_path)
    state.write(paths, st)
    state.remove(paths, expected_pid=st.pid + 1)
    assert paths.state_file.exists()
    state.remove(paths, expected_pid=st.pid)
    assert not paths.state_file.exists()


def test_pid_alive(dead_pid):
    import os

    assert state.pid_alive(os.getpid())
    assert not state.pid_alive(dead_pid)
    assert not state.pid_alive(0)


def test_a_zombie_is_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{proc.pid}/stat")
    deadline = time.monotonic() + 10
    while stat.read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "child did not exit"
        time.sleep(0.01)
    try:
        assert not state.pid_alive(proc.pid)
    finally:
        proc.wait()


def test_a_live_pid_of_another_program_is_stale(tmp_path, make_state):
    paths = FoundryPaths(tmp_path)
    st = make_state(tmp_path)  # this pytest process: alive, not the server module
    state.write(paths, st)
    assert state.read_live(paths) == (None, st)
    assert not paths.state_file.exists()
