"""`invoke foundry.serve|status|stop` as a user runs them: output, exit codes, processes.

Each test gets its own state dir (STACK_STATE_DIR) and a free port, so it never
touches the session ``foundry_server`` nor a developer's own server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from stackctl.config import envfile
from stackctl.foundry import lifecycle
from stackctl.foundry.paths import FoundryPaths
from stackctl.foundry.state import pid_alive, read
from tests.plugins.common import REPO, free_port
from tests.plugins.foundry import TINY_MODEL_DIR, TINY_MODEL_ID, serve_tiny_model

INVOKE = str(Path(sys.executable).with_name("invoke"))


def invoke(state_dir: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run invoke with its own .env (STACK_ENV_FILE) whose STACK_STATE_DIR is ``state_dir``."""
    env_file = state_dir.parent / f"{state_dir.name}.env"
    if not env_file.exists():
        envfile.ensure(env_file)
        env_file.write_text(env_file.read_text().replace("STACK_STATE_DIR=.state", f"STACK_STATE_DIR={state_dir}"))
    env = dict(os.environ, STACK_ENV_FILE=str(env_file), **(extra_env or {}))
    return subprocess.run(
        [INVOKE, "-r", str(REPO), *args], capture_output=True, text=True, env=env, timeout=180, check=False,
    )


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The user-visible failure: non-zero exit, nothing on stdout, one line on stderr."""
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def server_processes(state_dir: Path) -> list[str]:
    """Live processes whose command line names ``state_dir`` (psutil: `ps` output is cut
    at the terminal width, so a long path could fall off and the check pass vacuously)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(state_dir) in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{p.info['pid']} {cmd}")
    return found


def test_serve_status_refuse_stop_leaves_nothing_behind(tmp_path):
    port = free_port()
    served = invoke(tmp_path, "foundry.serve", "--model-path", str(TINY_MODEL_DIR), "--name", "tiny-chat", "--port", str(port))
    assert served.returncode == 0, served.stderr
    assert f"Foundry Local is serving {TINY_MODEL_ID}" in served.stdout
    assert f"OpenAI base URL   http://127.0.0.1:{port}/catalogs/local/v1" in served.stdout
    assert "from containers   through the stack's gateway" in served.stdout  # loopback only
    st = read(FoundryPaths(tmp_path))
    assert st is not None and pid_alive(st.pid)
    assert st.urls[0] == f"http://127.0.0.1:{port}"

    status = invoke(tmp_path, "foundry.status")
    assert status.returncode == 0, status.stderr
    for expected in (f"pid              {st.pid}", "answering", f"loaded models    {TINY_MODEL_ID}", *st.urls):
        assert expected in status.stdout

    again = invoke(tmp_path, "foundry.serve", "--model-path", str(TINY_MODEL_DIR), "--port", str(free_port()))
    assert one_line_error(again) == (
        f"error: an embedded Foundry Local server is already running: pid {st.pid} at http://127.0.0.1:{port} "
        f"serving {TINY_MODEL_ID} — use it, or run `./stack foundry.stop` first"
    )

    stopped = invoke(tmp_path, "foundry.stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"Foundry Local server pid {st.pid} stopped in" in stopped.stdout  # SIGTERM sufficed, no SIGKILL
    assert not pid_alive(st.pid)
    assert not FoundryPaths(tmp_path).state_file.exists()
    assert server_processes(tmp_path) == []
    log = FoundryPaths(tmp_path).log_file.read_text()
    assert "received SIGTERM" in log and log.rstrip().endswith("stopped")

    again = invoke(tmp_path, "foundry.stop")
    assert one_line_error(again).startswith("error: no embedded Foundry Local server is running in ")
    status = invoke(tmp_path, "foundry.status")
    assert one_line_error(status).startswith("no embedded Foundry Local server is running in ")


def test_sigterm_stops_cleanly_within_seconds(tmp_path):
    st = serve_tiny_model(tmp_path)
    result = lifecycle.stop(tmp_path, timeout=8)
    assert not result.forced and result.seconds < 8
    assert not pid_alive(st.pid)
    assert not FoundryPaths(tmp_path).state_file.exists()


def test_a_killed_server_leaves_a_stale_state_that_is_cleaned_up(tmp_path):
    st = serve_tiny_model(tmp_path)
    os.kill(st.pid, signal.SIGKILL)
    lifecycle._wait_gone(st.pid, 10)
    assert FoundryPaths(tmp_path).state_file.exists()  # nobody could remove it
    status = invoke(tmp_path, "foundry.status")
    assert status.returncode == 1
    assert f"removed a stale state file (pid {st.pid} is gone)" in status.stdout
    assert not FoundryPaths(tmp_path).state_file.exists()
    st2 = serve_tiny_model(tmp_path, port=st.port)  # the port is free again, serving works
    try:
        assert st2.pid != st.pid
    finally:
        lifecycle.stop(tmp_path)


def test_model_path_without_genai_config(tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    done = invoke(tmp_path, "foundry.serve", "--model-path", str(empty), "--port", str(free_port()))
    assert done.returncode == 2
    assert one_line_error(done) == (
        f"error: --model-path {empty}: no genai_config.json — pass an ONNX Runtime GenAI model folder "
        "(genai_config.json, model.onnx, tokenizer files)"
    )


def test_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = invoke(tmp_path, "foundry.serve", "--model-path", str(TINY_MODEL_DIR), "--port", str(port))
    assert done.returncode == 2
    assert one_line_error(done) == (
        f"error: port {port} is already in use — stop what uses it, or pass --port N (or set FOUNDRY_PORT in .env)"
    )
    assert server_processes(tmp_path) == []


def test_catalog_alias_offline_or_unknown(tmp_path):
    """No internet here: any catalog alias fails fast and points at --model-path."""
    done = invoke(tmp_path, "foundry.serve", "--model", "no-such-model-xyz", "--port", str(free_port()))
    assert done.returncode == 2
    line = one_line_error(done)
    assert line.startswith("error: the Foundry model catalog (api.catalog.azureml.ms) is unreachable or empty, "
                           "and the catalog model 'no-such-model-xyz' needs it")
    assert "`./stack up --model-path DIR` (remembered as FOUNDRY_MODEL_PATH in .env" in line


def test_sdk_not_installed(tmp_path):
    shim = tmp_path / "shim" / "foundry_local_sdk"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'foundry_local_sdk'\", name='foundry_local_sdk')\n"
    )
    done = invoke(
        tmp_path, "foundry.serve", "--model-path", str(TINY_MODEL_DIR), "--port", str(free_port()),
        extra_env={"PYTHONPATH": str(shim.parent)},
    )
    assert done.returncode == 2
    assert one_line_error(done) == (
        "error: foundry-local-sdk is not installed — run `pip install 'foundry-local-chat-stack[foundry]'` and retry"
    )
    assert not FoundryPaths(tmp_path).state_file.exists()
    assert server_processes(tmp_path) == []


@pytest.mark.parametrize("bad", [["--model", "a", "--model-path", "b"], ["--port", "http"]])
def test_bad_options(tmp_path, bad):
    done = invoke(tmp_path, "foundry.serve", *bad)
    assert done.returncode == 2
    assert one_line_error(done).startswith("error: ")
