"""The stack as a user runs it: `invoke up` from nothing, on a real Docker Engine,
with the real Foundry Local runtime serving the tiny model on the host.

Tests in this module run in order on one throwaway stack (tests/plugins/stack.py).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time

import docker
import httpx
import pytest

from stackctl.config.settings import BY_SERVICE, GATEWAY
from stackctl.docker import engine
from tests.e2e.helpers import assert_chat_kept, create_chat, signin, states, wait_for
from tests.plugins.stack import STACK_MODEL_ID

TINY = STACK_MODEL_ID


@pytest.fixture(scope="module")
def up(e2e_stack):
    t0 = time.monotonic()
    cp = e2e_stack.invoke("up", timeout=1500)
    e2e_stack.cold_up_seconds = time.monotonic() - t0
    assert cp.returncode == 0, cp.stdout + cp.stderr
    return cp


def test_up_from_nothing_reaches_all_healthy_and_says_where_things_are(e2e_stack, up):
    out = up.stdout
    assert "stack is up" in out
    for name in ("Open WebUI", "Prometheus", "Exporter"):
        assert name in out
    assert "WEBUI_ADMIN_PASSWORD" in out and e2e_stack.env["WEBUI_ADMIN_PASSWORD"] not in out
    st = states(e2e_stack)
    assert {"open-webui", "exporter", "prometheus"} <= set(st)
    assert all(st[x].ok for x in ("open-webui", "exporter", "prometheus"))
    print(f"\ncold `invoke up` (images cached, embedded Foundry started): {e2e_stack.cold_up_seconds:.1f}s")


def test_env_is_private_and_ports_are_loopback_only(e2e_stack, up):
    assert stat.S_IMODE(e2e_stack.env_file.stat().st_mode) == 0o600
    for name, svc in states(e2e_stack).items():
        if BY_SERVICE[name].host_network:  # the gateway, the keeper: nothing published (listeners: below)
            assert not svc.ports, svc
            continue
        assert svc.ports and all(p.startswith("127.0.0.1:") for p in svc.ports), svc


def test_foundry_listens_on_loopback_only_and_the_gateway_on_loopback_and_the_bridge(e2e_stack, up):
    from stackctl.foundry import bridge
    from tests.integration.security.test_foundry_bind import listening

    assert listening(int(e2e_stack.env["FOUNDRY_PORT"])) == {"127.0.0.1"}
    assert listening(int(e2e_stack.env["GATEWAY_PORT"])) == {"127.0.0.1", bridge.gateway_ip()}


def _from_container(image: str, *curl_args: str) -> str:
    """curl from a throwaway container, as any container on this host could."""
    out = docker.from_env().containers.run(  # curl fails on a refused connection: say 000 anyway
        # the newline matters: a last line without one was seen lost from the container's log
        image, ["-c", 'curl -s -m 5 -o /dev/null -w "%{http_code}\\n" "$@"; exit 0', "sh", *curl_args],
        entrypoint="sh", stderr=True,
        extra_hosts={"host.docker.internal": "host-gateway"}, remove=True, network_mode="bridge")
    return out.decode().strip()


def test_a_container_without_the_key_is_refused_and_the_gateway_guards_foundry(e2e_stack, up):
    image = e2e_stack.env["OPENWEBUI_IMAGE"]  # has curl, like any container on this host might
    door = f"http://host.docker.internal:{e2e_stack.env['GATEWAY_PORT']}"
    key = ["-H", f"Authorization: Bearer {e2e_stack.env['GATEWAY_API_KEY']}"]
    assert _from_container(image, door + "/v1/models") == "401"
    assert _from_container(image, *key, door + "/v1/models") == "200"
    assert _from_container(image, *key, "-X", "POST", door + "/shutdown") == "403"
    # Foundry itself is not reachable from containers at all (loopback only).
    assert _from_container(image, f"http://host.docker.internal:{e2e_stack.env['FOUNDRY_PORT']}/v1/models") == "000"
    assert httpx.get(f"http://127.0.0.1:{e2e_stack.env['FOUNDRY_PORT']}/v1/models", timeout=5).status_code == 200


def test_open_webui_offers_exactly_the_loaded_tiny_model(e2e_stack, up):
    ui = signin(e2e_stack)
    assert ui.models(refresh=True) == [TINY]
    cfg = ui.openai_config()
    assert cfg["OPENAI_API_BASE_URLS"][0] == f"http://host.docker.internal:{e2e_stack.env['GATEWAY_PORT']}/v1"
    assert cfg["OPENAI_API_KEYS"][0] == e2e_stack.env["GATEWAY_API_KEY"]
    assert not cfg["OPENAI_API_CONFIGS"].get("0", {}).get("model_ids")  # the gateway's list is live


def test_signup_is_closed_after_the_admin_exists(e2e_stack, up):
    r = httpx.post(e2e_stack.url("OPENWEBUI_PORT") + "/api/v1/auths/signup",
                   json={"name": "x", "email": "intruder@example.com", "password": "intruder-pass-123"})
    assert r.status_code in (401, 403), r.text


def test_exporter_in_its_container_sees_the_hosts_foundry(e2e_stack, up):
    def foundry_up():
        text = httpx.get(e2e_stack.url("EXPORTER_PORT") + "/metrics", timeout=5).text
        return any(line.startswith("foundry_up{") and 'kind="foundry"' in line and line.endswith(" 1.0")
                   for line in text.splitlines())
    wait_for(foundry_up, "exporter reports foundry_up 1")


def test_prometheus_scrapes_the_exporter(e2e_stack, up):
    def scraped():
        r = httpx.get(e2e_stack.url("PROMETHEUS_PORT") + "/api/v1/query",
                      params={"query": 'foundry_up{kind="foundry"} == 1'}, timeout=5).json()
        return r["data"]["result"]
    wait_for(scraped, "Prometheus has foundry_up == 1", timeout=120)


def _prom_sum(e2e_stack, query: str) -> float | None:
    r = httpx.get(e2e_stack.url("PROMETHEUS_PORT") + "/api/v1/query", params={"query": query}, timeout=5).json()
    res = r["data"]["result"]
    return float(res[0]["value"][1]) if res else None


def test_a_chat_through_open_webui_is_measured_at_the_gateway_and_scraped(e2e_stack, up):
    wait_for(lambda: _prom_sum(e2e_stack, 'up{job="gateway"}') == 1.0,
             "Prometheus scrapes the gateway with its key", timeout=120)
    ttft = "sum(foundry_gateway_time_to_first_token_seconds_count)"
    tokens = 'sum(foundry_gateway_tokens_total{type="completion"})'
    before = (_prom_sum(e2e_stack, ttft) or 0.0, _prom_sum(e2e_stack, tokens) or 0.0)
    ui = signin(e2e_stack)
    r = ui.post("/api/chat/completions", timeout=60, json={
        "model": TINY, "stream": True, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and "data:" in r.text, r.text[:300]
    wait_for(lambda: (_prom_sum(e2e_stack, ttft) or 0.0) >= before[0] + 1
             and (_prom_sum(e2e_stack, tokens) or 0.0) > before[1],
             "the chat's TTFT and tokens reach Prometheus through the gateway's /metrics", timeout=90)


def test_second_up_changes_nothing(e2e_stack, up):
    before = {n: s.container for n, s in states(e2e_stack).items()}
    started = _started_at(e2e_stack)
    env_before = e2e_stack.env_file.read_bytes()
    cp = e2e_stack.invoke("up")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "Open WebUI connection set" not in cp.stdout
    assert {n: s.container for n, s in states(e2e_stack).items()} == before
    assert _started_at(e2e_stack) == started
    assert e2e_stack.env_file.read_bytes() == env_before


def _started_at(s):
    c = docker.from_env()
    return {ctr.name: ctr.attrs["State"]["StartedAt"] for ctr in
            c.containers.list(filters={"label": f"{engine.PROJECT_LABEL}={s.env['COMPOSE_PROJECT_NAME']}"})}


@pytest.fixture(scope="module")
def chat(e2e_stack, up):
    return create_chat(e2e_stack, TINY)


def test_chat_and_session_survive_down_and_up(e2e_stack, chat):
    cp = e2e_stack.invoke("down")
    assert cp.returncode == 0
    assert not states(e2e_stack)
    assert "embedded Foundry Local stopped" in cp.stdout  # `up` started it, `down` undoes it
    assert e2e_stack.invoke("up").returncode == 0
    assert_chat_kept(e2e_stack, chat)  # same JWT: WEBUI_SECRET_KEY is stable


def test_chat_and_session_survive_container_recreate(e2e_stack, chat):
    c = docker.from_env()
    old_id = c.containers.get(states(e2e_stack)["open-webui"].container).id
    cp = e2e_stack.compose("up", "-d", "--no-build", "--force-recreate", "open-webui")
    assert cp.returncode == 0, cp.stderr
    wait_for(lambda: states(e2e_stack)["open-webui"].ok, "open-webui healthy after re-create", timeout=180)
    assert c.containers.get(states(e2e_stack)["open-webui"].container).id != old_id
    assert_chat_kept(e2e_stack, chat)  # same JWT across the re-create


def test_chat_survives_sigkill_of_open_webui_main_process(e2e_stack, chat):
    c = docker.from_env()
    ctr = c.containers.get(states(e2e_stack)["open-webui"].container)
    restarts = ctr.attrs["RestartCount"]
    os.kill(ctr.attrs["State"]["Pid"], signal.SIGKILL)  # as a crash or the OOM killer would
    wait_for(lambda: c.containers.get(ctr.id).attrs["RestartCount"] > restarts, "restart policy kicks in")
    wait_for(lambda: states(e2e_stack)["open-webui"].ok, "open-webui healthy after SIGKILL", timeout=180)
    assert_chat_kept(e2e_stack, chat)


def test_foundry_on_another_port_is_reconciled_and_the_chat_is_kept(e2e_stack, chat):
    assert e2e_stack.invoke("foundry.stop").returncode == 0
    from stackctl.config import envfile
    from tests.plugins.common import free_port

    new_port = str(free_port())
    text = e2e_stack.env_file.read_text()
    old_port = e2e_stack.env["FOUNDRY_PORT"]
    e2e_stack.env_file.write_text(text.replace(f"FOUNDRY_PORT={old_port}", f"FOUNDRY_PORT={new_port}"))
    envfile.ensure(e2e_stack.env_file)
    cp = e2e_stack.invoke("up")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "Open WebUI connection set" not in cp.stdout  # its door (the gateway) did not move
    assert e2e_stack.env["GATEWAY_UPSTREAM_URL"].endswith(f":{new_port}/catalogs/local")
    ui = signin(e2e_stack)
    assert ui.models(refresh=True) == [TINY]
    assert_chat_kept(e2e_stack, chat)


def test_status_shows_services_and_foundry(e2e_stack, up):
    cp = e2e_stack.invoke("status")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    for word in ("open-webui", "exporter", "prometheus", "gateway", "foundry", TINY, "healthy"):
        assert word in cp.stdout
    assert e2e_stack.env["WEBUI_ADMIN_PASSWORD"] not in cp.stdout


def test_doctor_is_clean_on_a_healthy_stack(e2e_stack, up):
    cp = e2e_stack.invoke("doctor", "--json")
    findings = json.loads(cp.stdout)["checks"]
    bad = [f for f in findings if f["status"] == "fail"]
    assert not bad, bad
    assert cp.returncode in (0, 1)
    secrets = [e2e_stack.env[k] for k in ("WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD")]
    assert not any(x in cp.stdout + cp.stderr for x in secrets)


# -- A fleet on the same stack (issue 17): last in the module, it changes the gateway's config.
# Three Foundry hosts in network namespaces behind edge gateways (tests/plugins/fleet.py);
# the gateway container (host networking) reaches them as it would reach LAN machines.


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, up):
    from tests.plugins.fleet import Fleet

    if os.geteuid() != 0:
        pytest.fail("the fleet tests need network namespaces: run as root (CI does)")
    f = Fleet(tmp_path_factory.mktemp("fleet")).start()
    yield f
    f.stop()


def _set_env(path, **values: str) -> None:
    lines = [ln for ln in path.read_text().splitlines() if ln.split("=", 1)[0] not in values]
    path.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in values.items())]) + "\n")


def _fleet_file(fleet, path, extra: str = "") -> None:
    from tests.plugins.fleet import EDGE_PORT

    hosts = "".join(f"  - {{name: host{h.n}, url: \"http://{h.address}:{EDGE_PORT}\", "
                    f"api_key_env: EDGE_{h.n}_KEY}}\n" for h in fleet.hosts)
    path.write_text("upstreams:\n  - {name: foundry, url_env: GATEWAY_UPSTREAM_URL, "
                    "follow_env: GATEWAY_UPSTREAM_FOLLOW}\n" + hosts + extra
                    + "per_user: {enabled: true, header: name, max_users: 20}\n")


def test_a_bad_fleet_file_is_refused_before_anything_changes(e2e_stack, fleet, tmp_path):
    from tests.plugins.fleet import edge_key

    bad = tmp_path / "fleet.yml"
    _fleet_file(fleet, bad, "  - {name: host1, url: \"http://10.213.9.2:9180\", "
                            "api_key_env: EDGE_9_KEY}\n")
    before = states(e2e_stack)[GATEWAY.name].container
    _set_env(e2e_stack.env_file, GATEWAY_FLEET_FILE=str(bad),
             **{f"EDGE_{h.n}_KEY": edge_key(h.n) for h in fleet.hosts})
    env_before = e2e_stack.env_file.read_text()
    cp = e2e_stack.invoke("up")
    assert cp.returncode == 2, cp.stdout + cp.stderr
    assert f'{bad}: upstreams[4].name: "host1" is used twice' in cp.stderr
    assert f"{bad}: upstreams[4].api_key_env: environment variable EDGE_9_KEY is not set" in cp.stderr
    assert states(e2e_stack)[GATEWAY.name].container == before  # nothing re-created
    assert e2e_stack.env_file.read_text() == env_before  # nothing written


def test_the_fleets_models_reach_open_webui_and_each_host_chats(e2e_stack, fleet, tmp_path):
    from tests.plugins.foundry import TINY_MODEL_ID as HOSTS_MODEL

    good = tmp_path / "fleet.yml"
    _fleet_file(fleet, good, f"routing:\n  routes:\n    - {{name: code, models: [\"{HOSTS_MODEL}\"]}}\n")
    for h in fleet.hosts:  # a route must name a model some upstream declares
        good.write_text(good.read_text().replace(
            f"api_key_env: EDGE_{h.n}_KEY}}", f"api_key_env: EDGE_{h.n}_KEY, models: [\"{HOSTS_MODEL}\"]}}"))
    _set_env(e2e_stack.env_file, GATEWAY_FLEET_FILE=str(good))
    cp = e2e_stack.invoke("up")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    keys = (e2e_stack.state_dir / "gateway" / "upstreams.env")
    assert keys.stat().st_mode & 0o777 == 0o600
    assert sorted(k.split("=")[0] for k in keys.read_text().split()) == ["EDGE_1_KEY", "EDGE_2_KEY",
                                                                         "EDGE_3_KEY"]
    ui = signin(e2e_stack)
    # The union, one entry per id: the stack's own model, the hosts' model (served by three
    # hosts), the route.
    assert sorted(ui.models(refresh=True)) == sorted([TINY, HOSTS_MODEL, "code"])
    r = ui.post("/api/chat/completions", timeout=120,
                json={"model": "code", "max_tokens": 8, "stream": False,
                      "messages": [{"role": "user", "content": "Say hi"}]})
    assert r.status_code == 200, r.text
    status = e2e_stack.invoke("status")
    assert "upstreams (4 of 4 in rotation):" in status.stdout, status.stdout
    for h in fleet.hosts:
        assert f"host{h.n}" in status.stdout
    smoke = e2e_stack.invoke("smoke")
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    for name in ("foundry", *(f"host{h.n}" for h in fleet.hosts)):
        assert f"chat via {name}" in smoke.stdout
