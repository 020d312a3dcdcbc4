"""serve/stop/status refusals that happen before any process is spawned."""

import socket

import httpx
import pytest

from stackctl.errors import StackError, UsageError
from stackctl.foundry import lifecycle, state
from stackctl.foundry.paths import FoundryPaths
from tests.plugins.common import free_port


def test_serve_refuses_while_one_runs_naming_it(tmp_path, make_state, server_pid):
    live = make_state(tmp_path, pid=server_pid)
    state.write(FoundryPaths(tmp_path), live)
    with pytest.raises(StackError) as err:
        lifecycle.serve(tmp_path, port=free_port(), model="x")
    assert str(err.value) == (
        f"an embedded Foundry Local server is already running: pid {live.pid} at http://127.0.0.1:52180 "
        "serving tiny-chat-generic-cpu:1 — use it, or run `./stack foundry.stop` first"
    )


def test_serve_port_in_use(tmp_path, tiny_model_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StackError) as err:
            lifecycle.serve(tmp_path, port=port, model_path=str(tiny_model_dir))
    assert str(err.value) == (
        f"port {port} is already in use — stop what uses it, or pass --port N (or set FOUNDRY_PORT in .env)"
    )
    assert err.value.exit_code == 2


def test_serve_bad_port(tmp_path, tiny_model_dir):
    with pytest.raises(UsageError, match=r"^--port 0 is not a port \(1-65535\)$"):
        lifecycle.serve(tmp_path, port=0, model_path=str(tiny_model_dir))


def test_catalog_alias_offline_fails_fast_with_the_local_alternative(tmp_path):
    def offline(request):
        raise httpx.ConnectError("Could not resolve hostname", request=request)

    client = httpx.Client(transport=httpx.MockTransport(offline))
    with pytest.raises(StackError) as err:
        lifecycle.serve(tmp_path, port=free_port(), model="qwen2.5-0.5b", http=client)
    message = str(err.value)
    assert message.startswith("the Foundry model catalog (api.catalog.azureml.ms) is unreachable or empty, "
                              "and the catalog model 'qwen2.5-0.5b' needs it")
    assert "--model qwen2.5-0.5b" not in message and "FOUNDRY_MODEL_PATH" in message
    assert err.value.exit_code == 2
    assert not FoundryPaths(tmp_path).state_file.exists()


def test_loopback_only_unless_a_host_is_given_and_0000_stands_alone():
    port = free_port()
    assert lifecycle._bind_hosts(None, port) == ["127.0.0.1"]  # never the bridge: the gateway is the door
    assert lifecycle._bind_hosts("0.0.0.0", port) == ["0.0.0.0"]
    with pytest.raises(UsageError, match=r"^cannot bind 192\.0\.2\.1:\d+ \(.*\) — pass a local address with --host"):
        lifecycle._bind_hosts("192.0.2.1", port)


def test_stop_when_nothing_runs(tmp_path):
    with pytest.raises(StackError) as err:
        lifecycle.stop(tmp_path)
    assert str(err.value) == (
        f"no embedded Foundry Local server is running in {tmp_path.resolve()}/foundry — start one with `./stack foundry.serve`"
    )
    assert err.value.exit_code == 1


def test_stop_with_stale_state_cleans_it_and_says_so(tmp_path, make_state, dead_pid):
    paths = FoundryPaths(tmp_path)
    state.write(paths, make_state(tmp_path, pid=dead_pid))
    with pytest.raises(StackError, match=rf"\(removed a stale state file of pid {dead_pid}\)"):
        lifecycle.stop(tmp_path)
    assert not paths.state_file.exists()


def test_stop_never_signals_a_pid_that_is_not_our_server(tmp_path, make_state):
    paths = FoundryPaths(tmp_path)
    state.write(paths, make_state(tmp_path))  # this pytest process: alive, but not the server module
    with pytest.raises(StackError, match="removed a stale state file"):
        lifecycle.stop(tmp_path)
    assert not paths.state_file.exists()


def test_status_not_running(tmp_path, make_state, dead_pid):
    state.write(FoundryPaths(tmp_path), make_state(tmp_path, pid=dead_pid))
    st = lifecycle.status(tmp_path)
    assert not st.running and st.stale is not None and st.stale.pid == dead_pid
    assert st.problem == f"no embedded Foundry Local server is running in {tmp_path.resolve()}/foundry"
