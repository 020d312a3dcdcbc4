"""Faults a stack left running on a laptop meets: crashes (SIGKILL, as a crash or
the OOM killer would), the host's Foundry Local going away and coming back,
Prometheus restarting. Nothing may be lost and everything must come back.

One throwaway stack for the module (tests/plugins/stack.py); tests run in order.
"""

from __future__ import annotations

import os
import signal
import time

import docker
import httpx
import pytest

from tests.e2e.helpers import assert_chat_kept, create_chat, exporter_sample, states, wait_for
from tests.plugins.stack import STACK_MODEL_ID

TINY = STACK_MODEL_ID
SERVICES = ("open-webui", "exporter", "prometheus", "gateway")


@pytest.fixture(scope="module")
def stack(e2e_stack):
    cp = e2e_stack.invoke("up", timeout=1500)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    wait_for(lambda: exporter_sample(e2e_stack, "foundry_up", kind="foundry") == 1.0,
             "exporter reports foundry_up 1", timeout=120)
    return e2e_stack


@pytest.fixture(scope="module")
def chat(stack):
    return create_chat(stack, TINY)


def prom_query(s, query: str, at: float | None = None) -> list:
    params = {"query": query}
    if at is not None:
        params["time"] = f"{at:.3f}"
    r = httpx.get(s.url("PROMETHEUS_PORT") + "/api/v1/query", params=params, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


@pytest.fixture(scope="module")
def history_mark(stack):
    """A moment Prometheus has data for, taken before any fault."""
    wait_for(lambda: prom_query(stack, 'foundry_up{kind="foundry"}'), "first scrape", timeout=120)
    return time.time()


@pytest.mark.parametrize("service", SERVICES)
def test_sigkill_of_main_process_is_recovered_by_the_restart_policy(stack, chat, history_mark, service):
    c = docker.from_env()
    ctr = c.containers.get(states(stack)[service].container)
    restarts = ctr.attrs["RestartCount"]
    os.kill(ctr.attrs["State"]["Pid"], signal.SIGKILL)
    wait_for(lambda: c.containers.get(ctr.id).attrs["RestartCount"] > restarts,
             f"{service} restarted by its restart policy", timeout=60)
    wait_for(lambda: states(stack)[service].ok, f"{service} healthy again", timeout=180)
    assert_chat_kept(stack, chat)
    if service == "prometheus":
        assert prom_query(stack, 'foundry_up{kind="foundry"}', at=history_mark), "history lost"


def test_foundry_stopped_shows_down_and_restarted_on_the_same_port_shows_up(stack, chat):
    assert stack.invoke("foundry.stop").returncode == 0
    wait_for(lambda: exporter_sample(stack, "foundry_up", kind="foundry") == 0.0,
             "exporter reports foundry_up 0 while Foundry is stopped", timeout=90)
    cp = stack.invoke("foundry.serve")  # same FOUNDRY_PORT and model from .env
    assert cp.returncode == 0, cp.stdout + cp.stderr
    wait_for(lambda: exporter_sample(stack, "foundry_up", kind="foundry") == 1.0,
             "exporter reports foundry_up 1 after the restart", timeout=90)
    # Open WebUI recovers by itself: same URL, same model id.
    from tests.e2e.helpers import signin
    ui = signin(stack)
    r = ui.post("/api/chat/completions", json={"model": TINY, "stream": False, "max_tokens": 8,
                                               "messages": [{"role": "user", "content": "hi"}]}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
    assert_chat_kept(stack, chat)


def test_foundry_on_a_new_port_needs_up_and_then_everything_follows(stack, chat):
    from tests.plugins.common import free_port

    assert stack.invoke("foundry.stop").returncode == 0
    new_port = str(free_port())
    old_port = stack.env["FOUNDRY_PORT"]
    stack.env_file.write_text(stack.env_file.read_text().replace(
        f"FOUNDRY_PORT={old_port}\n", f"FOUNDRY_PORT={new_port}\n"))
    cp = stack.invoke("up")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    # The gateway follows Foundry (its upstream); Open WebUI and the exporter keep their door.
    assert stack.env["GATEWAY_UPSTREAM_URL"].endswith(f":{new_port}/catalogs/local")
    wait_for(lambda: exporter_sample(stack, "foundry_up", kind="foundry") == 1.0,
             "exporter follows Foundry to the new port", timeout=120)
    assert_chat_kept(stack, chat)


def test_prometheus_restart_keeps_history(stack, history_mark):
    cp = stack.compose("restart", "prometheus")
    assert cp.returncode == 0, cp.stderr
    wait_for(lambda: states(stack)["prometheus"].ok, "prometheus healthy after restart", timeout=120)
    wait_for(lambda: prom_query(stack, 'foundry_up{kind="foundry"}', at=history_mark),
             "pre-restart samples are still queryable", timeout=60)


def test_no_secret_in_metrics_logs_status_or_doctor(stack):
    env = stack.env
    secrets = [env[k] for k in ("WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD",
                                "GATEWAY_API_KEY")]
    token_file = stack.state_dir / "openwebui-token"
    if token_file.exists():
        secrets.append(token_file.read_text().strip())
    outputs = {
        "metrics": httpx.get(stack.url("EXPORTER_PORT") + "/metrics", timeout=5).text,
        "logs": (lambda cp: cp.stdout + cp.stderr)(stack.invoke("logs", "--tail", "5000")),
        "status": (lambda cp: cp.stdout + cp.stderr)(stack.invoke("status")),
        "doctor": (lambda cp: cp.stdout + cp.stderr)(stack.invoke("doctor")),
    }
    for where, text in outputs.items():
        assert text.strip(), f"{where} printed nothing"
        leaked = [s[:4] + "…" for s in secrets if s and s in text]
        assert not leaked, f"secret(s) {leaked} appear in {where}"


def _models(stack) -> list[str] | None:
    from tests.e2e.helpers import signin

    try:
        return signin(stack).models(refresh=True)
    except Exception:  # a restarting service: ask again
        return None


def test_a_model_unloaded_and_loaded_in_foundry_is_followed_by_open_webui(stack):
    """No `up`: the gateway's /v1/models lists the loaded chat models live (issue 15)."""
    import json

    state = json.loads((stack.state_dir / "foundry" / "server.json").read_text())
    prefix = f"http://127.0.0.1:{stack.env['FOUNDRY_PORT']}/catalogs/local/models"
    alias = state["model_alias"]
    assert _models(stack) == [TINY]
    seen_empty = False
    for _ in range(3):  # the embedded server's watchdog reloads its model every 30 s: retry
        assert httpx.get(f"{prefix}/unload/{alias}", timeout=30).status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not seen_empty:
            seen_empty = _models(stack) == []
            time.sleep(0.2)
        if seen_empty:
            break
    assert seen_empty, "Open WebUI kept offering the unloaded model"
    assert httpx.get(f"{prefix}/load/{alias}", timeout=60).status_code == 200
    wait_for(lambda: _models(stack) == [TINY], "Open WebUI offers the model again once loaded", timeout=30)


def test_dockerd_restart_brings_chat_back_with_no_command(stack, chat):
    """As after a reboot's daemon start: every container comes back by its restart policy,
    the gateway (host networking) included; the host's Foundry is untouched."""
    from tests.e2e import daemon

    t0 = time.monotonic()
    daemon.start(daemon.stop(), stack.state_dir / "dockerd-restart.log")
    wait_for(lambda: all(s.ok for s in states(stack).values()) and {"open-webui", "gateway"} <= set(states(stack)),
             "every service healthy again by its restart policy", timeout=240)
    from tests.e2e.helpers import signin

    def chats() -> bool:
        try:
            r = signin(stack).post("/api/chat/completions", timeout=30, json={
                "model": TINY, "stream": False, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
            return r.status_code == 200
        except Exception:  # still coming back
            return False

    wait_for(chats, "a chat through Open WebUI and the gateway works", timeout=120)
    print(f"\ndockerd restarted → chat works again after {time.monotonic() - t0:.1f} s, no stack command run")
    assert_chat_kept(stack, chat)
