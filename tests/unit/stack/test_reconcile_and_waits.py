"""Pure pieces of `invoke up`: the Open WebUI connection reconcile, health
verdicts and waits, compose version parsing and command lines."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from stackctl import openwebui
from stackctl.config.stack import Stack
from stackctl.docker import compose, health
from stackctl.docker.engine import ServiceState
from stackctl.errors import StackError

URL = "http://host.docker.internal:9180/v1"
KEY = "k" * 43


def cfg(urls, configs=None, enable=True, keys=None):
    return {"ENABLE_OPENAI_API": enable, "OPENAI_API_BASE_URLS": urls,
            "OPENAI_API_KEYS": keys if keys is not None else [""] * len(urls),
            "OPENAI_API_CONFIGS": configs or {}}


def test_a_connection_from_before_the_gateway_moves_to_it_with_the_key_and_no_allowlist():
    # direct to Foundry, with the static model_ids allowlist older stacks stored
    old = cfg(["http://host.docker.internal:52180/catalogs/local/v1"], {"0": {"enable": True, "model_ids": ["m:1"]}})
    want = openwebui.desired_openai_config(old, URL, KEY)
    assert want["OPENAI_API_BASE_URLS"] == [URL] and want["OPENAI_API_KEYS"] == [KEY]
    assert want["OPENAI_API_CONFIGS"]["0"] == {"enable": True}  # the gateway's live list decides


def test_matching_config_needs_no_change():
    assert openwebui.desired_openai_config(cfg([URL], {"0": {"enable": True}}, keys=[KEY]), URL, KEY) is None
    assert openwebui.desired_openai_config(cfg([URL], {}, keys=[KEY]), URL, KEY) is None


def test_a_changed_key_or_a_leftover_allowlist_is_rewritten():
    assert openwebui.desired_openai_config(cfg([URL], {}, keys=["old"]), URL, KEY)["OPENAI_API_KEYS"] == [KEY]
    assert openwebui.desired_openai_config(cfg([URL], {"0": {"model_ids": ["m:1"]}}, keys=[KEY]), URL, KEY)


def test_moved_port_rewrites_entry_zero_and_keeps_other_connections_and_settings():
    current = cfg(["http://host.docker.internal:1111/v1", "https://api.example/v1"],
                  {"0": {"enable": True, "model_ids": ["m:1"], "prefix_id": "fl"},
                   "1": {"enable": True, "tags": ["x"]}}, keys=["", "sk-user"])
    want = openwebui.desired_openai_config(current, URL, KEY)
    assert want["OPENAI_API_BASE_URLS"] == [URL, "https://api.example/v1"]
    assert want["OPENAI_API_KEYS"] == [KEY, "sk-user"]
    assert want["OPENAI_API_CONFIGS"]["0"] == {"enable": True, "prefix_id": "fl"}
    assert want["OPENAI_API_CONFIGS"]["1"] == {"enable": True, "tags": ["x"]}


def test_disabled_connection_or_api_is_turned_back_on():
    assert openwebui.desired_openai_config(cfg([URL], {"0": {"enable": False}}, keys=[KEY]), URL, KEY)
    assert openwebui.desired_openai_config(cfg([URL], {}, enable=False, keys=[KEY]), URL, KEY)


def test_reconcile_posts_only_when_needed():
    posted = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/openai/config":
            return httpx.Response(200, json=cfg(["http://old:1/v1"]))
        posted.append(req)
        return httpx.Response(200, json={})

    ui = openwebui.OpenWebUI("http://ui", httpx.Client(transport=httpx.MockTransport(handler)), token="t")
    assert openwebui.reconcile(ui, URL, KEY) is True
    assert posted and posted[0].headers["authorization"] == "Bearer t"


def test_login_reuses_a_valid_cached_token_and_caches_new_ones_0600(tmp_path):
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req.url.path)
        if req.url.path == "/api/v1/auths/":
            ok = req.headers.get("authorization") == "Bearer good"
            return httpx.Response(200 if ok else 401, json={})
        return httpx.Response(200, json={"token": "good"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    openwebui.login(openwebui.OpenWebUI("http://ui", http), "a@b.c", "pw", tmp_path)
    assert calls.count("/api/v1/auths/signin") == 1
    assert (tmp_path / openwebui.TOKEN_FILE).stat().st_mode & 0o777 == 0o600
    calls.clear()
    for _ in range(20):
        openwebui.login(openwebui.OpenWebUI("http://ui", http), "a@b.c", "pw", tmp_path)
    assert "/api/v1/auths/signin" not in calls


def test_signin_rate_limit_is_a_clear_error():
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(429)))
    with pytest.raises(StackError, match="rate limited"):
        openwebui.OpenWebUI("http://ui", http).signin("a@b.c", "pw")


def st(svc, state="running", health_="healthy"):
    return ServiceState(svc, svc, state, health_, "img", 0, ())


def test_verdict():
    assert health.verdict(["a"], {"a": st("a")}) == (True, None)
    assert health.verdict(["a", "b"], {"a": st("a")}) == (False, None)
    assert health.verdict(["a"], {"a": st("a", health_="starting")}) == (False, None)
    assert "unhealthy" in health.verdict(["a"], {"a": st("a", health_="unhealthy")})[1]
    assert "exited" in health.verdict(["a"], {"a": st("a", state="exited", health_="none")})[1]


def test_wait_healthy_names_what_is_still_starting():
    now = [0.0]
    states = {"a": st("a"), "b": st("b", health_="starting")}
    with pytest.raises(StackError, match=r"b \(running, starting\).*\./stack logs b"):
        health.wait_healthy(["a", "b"], lambda: states, timeout=10, clock=lambda: now[0],
                            sleep=lambda s: now.__setitem__(0, now[0] + s))


def test_wait_healthy_returns_once_healthy():
    seq = iter([{"a": st("a", health_="starting")}, {"a": st("a")}])
    got = health.wait_healthy(["a"], lambda: next(seq), timeout=10, sleep=lambda s: None)
    assert got["a"].ok


@pytest.mark.parametrize("out, version", [
    ("docker-compose version 1.29.2, build unknown", "1.29.2"),
    ("Docker Compose version v2.29.1", "2.29.1"),
    ("Docker Compose version v5.6.1", "5.6.1"),
    ("garbage", None),
])
def test_parse_version(out, version):
    assert compose.parse_version(out) == version


@pytest.mark.parametrize("platform, keeper", [("linux", ["--profile", "keeper"]), ("darwin", []), ("win32", [])])
def test_command_names_project_file_env_and_profiles(monkeypatch, platform, keeper):
    """COMPOSE_PROFILES, plus the keeper's on Linux only (host networking reaches the
    host's loopback only there)."""
    monkeypatch.setattr("sys.platform", platform)
    stack = Stack(Path("/r"), Path("/r/.env"), {"COMPOSE_PROJECT_NAME": "p", "COMPOSE_PROFILES": "grafana"})
    argv = compose.command(compose.Compose(("docker", "compose"), "2.0.0"), stack, "up", "-d")
    assert argv == ["docker", "compose", "--project-name", "p", "--project-directory", "/r",
                    "-f", "/r/compose.yaml", "--env-file", "/r/.env", "--profile", "grafana", *keeper, "up", "-d"]
    assert ("foundry-keeper" in stack.services) == (platform == "linux")


def test_clean_environ_drops_settings(monkeypatch):
    monkeypatch.setenv("OPENWEBUI_PORT", "1")
    monkeypatch.setenv("HOME_LIKE", "x")
    env = compose.clean_environ()
    assert "OPENWEBUI_PORT" not in env and env["HOME_LIKE"] == "x"


def test_a_running_gateway_holds_its_port_though_it_publishes_none():
    from stackctl.config.settings import SETTINGS
    from stackctl.ports import own_ports

    s = Stack(Path("/x"), Path("/x/.env"), {k.key: k.default for k in SETTINGS} | {"GATEWAY_PORT": "9999"})
    assert own_ports(s, {3000}, {"open-webui": 1}) == {3000}
    assert own_ports(s, {3000}, {"open-webui": 1, "gateway": 1}) == {3000, 9999}
