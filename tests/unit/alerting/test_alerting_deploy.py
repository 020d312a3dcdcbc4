"""What `invoke up` does for Alertmanager: render before anything starts (a bad value
stops `up` with nothing started or written), write only on change, point
ALERTMANAGER_CONFIG_DIR at the file, reload a running Alertmanager on change."""

from __future__ import annotations

import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from stackctl.alerting import deploy, timings_from
from stackctl.config import envfile
from stackctl.config.settings import ALERTMANAGER, ALERTMANAGER_CONFIG_KEY, MANAGED_KEYS
from stackctl.config.stack import ROOT, Stack
from stackctl.errors import UsageError

HOOK = "http://host.docker.internal:9/hook/T0K3N"


def make_stack(tmp_path: Path, **env: str) -> Stack:
    path = tmp_path / ".env"
    envfile.ensure(path)
    values = {**envfile.load(path), "STACK_STATE_DIR": str(tmp_path / "state"), **env}
    return Stack(ROOT, path, values)


def test_renders_private_config_once_and_again_only_on_change(tmp_path):
    stack = make_stack(tmp_path, ALERT_WEBHOOK_URL=HOOK)
    update, changed = deploy.render_for(stack)
    folder = tmp_path / "state" / ALERTMANAGER.name
    assert (update, changed) == ({ALERTMANAGER_CONFIG_KEY: str(folder)}, True)
    assert ALERTMANAGER_CONFIG_KEY in MANAGED_KEYS
    config = folder / "alertmanager.yml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert deploy.render_for(stack) == (update, False)
    assert deploy.render_for(stack.with_env({**stack.env, "ALERT_WEBHOOK_URL": HOOK + "x"}))[1] is True
    assert HOOK + "x" in config.read_text()


def test_a_bad_value_writes_nothing_not_even_the_state_dir(tmp_path):
    stack = make_stack(tmp_path, ALERT_WEBHOOK_URL="host.docker.internal/hook")
    with pytest.raises(UsageError, match=r"^ALERT_WEBHOOK_URL in \.env is not an http"):
        deploy.render_for(stack)
    assert not (tmp_path / "state").exists()


def test_test_only_timing_knobs_shorten_the_waits_and_refuse_typos(tmp_path, monkeypatch):
    monkeypatch.setenv("STACK_TEST_ALERT_GROUP_WAIT", "1s")
    monkeypatch.setenv("STACK_TEST_ALERT_GROUP_INTERVAL", "5s")
    stack = make_stack(tmp_path)
    deploy.render_for(stack)
    route = yaml.safe_load((deploy.config_dir(stack) / "alertmanager.yml").read_text())["route"]
    assert (route["group_wait"], route["group_interval"]) == ("1s", "5s")
    assert timings_from({}) == timings_from({"STACK_TEST_ALERT_GROUP_WAIT": " "})
    with pytest.raises(UsageError, match=r"STACK_TEST_ALERT_GROUP_WAIT='1 sec'"):
        timings_from({"STACK_TEST_ALERT_GROUP_WAIT": "1 sec"})


@pytest.fixture
def alertmanager_stub():
    """A loopback server answering POST /-/reload as Alertmanager does; records calls."""
    calls: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            calls.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], calls
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("changed", "was_running", "reloads"),
                         [(True, True, True), (True, False, False), (False, True, False)])
def test_reload_only_when_changed_under_a_running_alertmanager(tmp_path, alertmanager_stub,
                                                               changed, was_running, reloads):
    port, calls = alertmanager_stub
    stack = make_stack(tmp_path, ALERTMANAGER_PORT=str(port))
    assert deploy.reload_if_changed(stack, changed, was_running) is reloads
    assert calls == (["/-/reload"] if reloads else [])


def test_up_stops_on_a_bad_alerting_value_before_docker_or_foundry(tmp_path, monkeypatch):
    from stackctl.lifecycle import up as up_module

    env = tmp_path / ".env"
    env.write_text(f"STACK_STATE_DIR={tmp_path / 'state'}\nALERT_RECEIVERS=pager\n")
    monkeypatch.setenv("STACK_ENV_FILE", str(env))

    def touched(*a, **k):
        raise AssertionError("up went on past a bad alerting value")

    monkeypatch.setattr(up_module.engine, "client", touched)
    monkeypatch.setattr(up_module.foundry_link, "ensure", touched)
    with pytest.raises(UsageError) as err:
        up_module.up()
    assert str(err.value).startswith("ALERT_RECEIVERS in .env names an unknown receiver kind 'pager'")
    assert err.value.exit_code == 2
    assert not (tmp_path / "state" / ALERTMANAGER.name).exists()


def test_alerts_test_refuses_while_alertmanager_runs_an_older_config(tmp_path):
    from stackctl.alerting import client
    from stackctl.errors import StackError

    stack = make_stack(tmp_path, ALERT_WEBHOOK_URL=HOOK)
    assert not deploy.config_is_current(stack)  # never rendered
    deploy.render_for(stack)
    assert deploy.config_is_current(stack)
    newer = stack.with_env({**stack.env, "ALERT_WEBHOOK_URL": HOOK + "-new"})
    with pytest.raises(StackError) as err:
        client.run_test(newer)  # refused before any HTTP: ALERTMANAGER_PORT points nowhere
    assert str(err.value).startswith("Alertmanager runs an older config than .env describes")
    assert err.value.exit_code == 2 and "T0K3N" not in str(err.value)
