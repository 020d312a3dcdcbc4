"""The state file: round trip, garbage, stale (dead pid, reused pid, stranger) cleanup, zombies."""

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

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


# -- identity: pid + start time + command line (issue 13, item 4) ----------------------


@pytest.fixture
def stranger():
    """A live process that is not the server: `sleep 300`, killed afterwards."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def lookalike(tmp_path):
    """A live process whose command line is the server's, down to --state-dir."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "-m", state.SERVER_MODULE,
                             "--state-dir", str(tmp_path)], stdin=subprocess.PIPE)
    yield proc
    proc.stdin.close()
    proc.wait(timeout=10)


def test_a_live_stranger_is_stale_even_with_its_own_start_time(tmp_path, make_state, stranger):
    paths = FoundryPaths(tmp_path)
    st = make_state(tmp_path, pid=stranger.pid)
    assert st.create_time == psutil.Process(stranger.pid).create_time()
    state.write(paths, st)
    found = state.check(paths)
    assert (found.live, found.stale, found.gone) == (None, st, False)
    assert found.why == f"pid {stranger.pid} runs `sleep 300`, not the embedded server"
    assert not paths.state_file.exists()
    assert stranger.poll() is None


def test_a_reused_pid_is_stale_even_when_it_looks_like_the_server(tmp_path, make_state, lookalike):
    """The server died; its pid now runs another process (same command line, even):
    the recorded start time tells them apart."""
    paths = FoundryPaths(tmp_path)
    now = psutil.Process(lookalike.pid).create_time()
    st = replace(make_state(tmp_path, pid=lookalike.pid), create_time=now - 3600)
    state.write(paths, st)
    found = state.check(paths)
    assert (found.live, found.stale) == (None, st)
    assert found.why.startswith(f"pid {lookalike.pid} now belongs to another process (started ")
    assert not paths.state_file.exists()
    # the same process with its true start time is the server
    state.write(paths, replace(st, create_time=now))
    assert state.check(paths).live is not None


def test_a_state_without_a_start_time_cannot_be_verified_so_is_stale(tmp_path, make_state, lookalike):
    paths = FoundryPaths(tmp_path)
    st = replace(make_state(tmp_path, pid=lookalike.pid), create_time=None)
    state.write(paths, st)
    found = state.check(paths)
    assert found.stale == st and found.why == f"pid {lookalike.pid} cannot be verified (the state file has no start time)"


def test_a_wall_clock_step_since_the_server_started_does_not_make_it_a_stranger(tmp_path, make_state, lookalike):
    """Linux computes start times from the boot time, which moves with the wall clock: the
    server records the boot time it read, and identity is the start time since boot."""
    paths = FoundryPaths(tmp_path)
    proc = psutil.Process(lookalike.pid)
    stepped = 90.0  # the clock was 90 s behind when the server recorded itself
    st = replace(make_state(tmp_path, pid=lookalike.pid),
                 create_time=proc.create_time() - stepped, boot_time=psutil.boot_time() - stepped)
    state.write(paths, st)
    assert state.check(paths).live == st
    # …while the same shift without the boot time to explain it is another process
    state.write(paths, replace(st, boot_time=None))
    assert state.check(paths).stale is not None


def test_status_says_why_a_state_was_stale(tmp_path, make_state, stranger):
    from stackctl.foundry import lifecycle

    state.write(FoundryPaths(tmp_path), make_state(tmp_path, pid=stranger.pid))
    st = lifecycle.status(tmp_path)
    assert not st.running and st.stale.pid == stranger.pid
    assert st.stale_why == f"pid {stranger.pid} runs `sleep 300`, not the embedded server"
    assert stranger.poll() is None
