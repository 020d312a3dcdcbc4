"""Discovery order, generation detection and failure reasons, with fake HTTP and CLI.

The fake transport answers only GETs; any other method fails the test, which is
how "discovery never calls POST /shutdown (or anything but GET)" is checked.
"""

import json
import subprocess

import httpx
import pytest

from stackctl.foundry import state
from stackctl.foundry.discovery import discover
from stackctl.foundry.paths import FoundryPaths

SDK_ROUTES = {
    "/status": {"endpoints": ["http://127.0.0.1:1"], "modelCachePath": "/c", "pid": 1},
    "/models/loaded": [],
    "/catalogs/local/models/loaded": ["tiny-chat-generic-cpu:1"],
}
CLASSIC_ROUTES = {
    "/openai/status": {"Endpoints": ["http://127.0.0.1:5273"], "ModelDirPath": "/m"},
    "/openai/loadedmodels": ["Phi-4-mini-instruct-generic-gpu", "whisper-tiny-generic-cpu"],
}


class FakeFoundry:
    """hosts: {"127.0.0.1:1": routes}; unknown host -> connection refused."""

    def __init__(self, hosts: dict[str, dict]):
        self.hosts = hosts
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "GET", f"discovery sent {request.method} {request.url}"
        self.requests.append(f"{request.url.host}:{request.url.port}{request.url.path}")
        routes = self.hosts.get(f"{request.url.host}:{request.url.port}")
        if routes is None:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path not in routes:
            return httpx.Response(404, text="No mapping")
        return httpx.Response(200, json=routes[request.url.path])

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


class FakeCli:
    """answers: {"server": (rc, stdout), "service": (rc, stdout)}; None -> not installed."""

    def __init__(self, answers: dict[str, tuple[int, str]] | None):
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        if self.answers is None:
            raise FileNotFoundError("foundry")
        rc, out = self.answers.get(argv[1], (1, "unknown command"))
        return subprocess.CompletedProcess(argv, rc, out, "")


def test_env_endpoint_wins_over_everything(tmp_path, make_state, server_pid):
    state.write(FoundryPaths(tmp_path), make_state(tmp_path, pid=server_pid, port=2))
    fake, cli = FakeFoundry({"127.0.0.1:1": SDK_ROUTES, "127.0.0.1:2": SDK_ROUTES}), FakeCli(None)
    d = discover({"FOUNDRY_LOCAL_ENDPOINT": "http://127.0.0.1:1/v1"}, tmp_path, http=fake.client(), run=cli)
    assert (d.found, d.source, d.root_url, d.generation) == (True, "env", "http://127.0.0.1:1", "sdk")
    assert d.chat_base_url == "http://127.0.0.1:1/catalogs/local/v1"
    assert d.chat_models == ("tiny-chat-generic-cpu:1",)
    assert cli.calls == []
    assert all(r.startswith("127.0.0.1:1/") for r in fake.requests)


def test_env_endpoint_down_is_reported_not_bypassed(tmp_path, make_state, server_pid):
    state.write(FoundryPaths(tmp_path), make_state(tmp_path, pid=server_pid, port=2))
    fake = FakeFoundry({"127.0.0.1:2": SDK_ROUTES})
    d = discover({"FOUNDRY_LOCAL_ENDPOINT": "http://127.0.0.1:1"}, tmp_path, http=fake.client(), run=FakeCli(None))
    assert not d.found and d.source == "env"
    assert d.reason.startswith("Foundry Local at http://127.0.0.1:1 does not answer /status or /openai/status (ConnectError")
    assert d.reason.endswith("— start Foundry Local there, or clear FOUNDRY_LOCAL_ENDPOINT in .env to discover it")


def test_env_endpoint_not_a_url(tmp_path):
    d = discover({"FOUNDRY_LOCAL_ENDPOINT": "localhost:5273"}, tmp_path, http=FakeFoundry({}).client(), run=FakeCli(None))
    assert not d.found and "is not an http(s) URL" in d.reason


def test_embedded_state_file_is_second(tmp_path, make_state, server_pid):
    state.write(FoundryPaths(tmp_path), make_state(tmp_path, pid=server_pid, port=2))
    cli = FakeCli({"server": (0, "running at http://127.0.0.1:3")})
    fake = FakeFoundry({"127.0.0.1:2": SDK_ROUTES, "127.0.0.1:3": SDK_ROUTES})
    d = discover({"FOUNDRY_LOCAL_ENDPOINT": ""}, tmp_path, http=fake.client(), run=cli)
    assert (d.found, d.source, d.root_url) == (True, "embedded", "http://127.0.0.1:2")
    assert d.openai_base_urls == ("http://127.0.0.1:2/v1", "http://127.0.0.1:2/catalogs/local/v1")
    assert cli.calls == []


def test_stale_state_file_is_removed_then_cli_is_asked(tmp_path, dead_pid, make_state):
    paths = FoundryPaths(tmp_path)
    state.write(paths, make_state(tmp_path, pid=dead_pid, port=2))
    cli = FakeCli({"server": (0, "Foundry Local server is running on http://127.0.0.1:3/")})
    d = discover({}, tmp_path, http=FakeFoundry({"127.0.0.1:3": SDK_ROUTES}).client(), run=cli)
    assert (d.found, d.source, d.root_url) == (True, "cli", "http://127.0.0.1:3")
    assert not paths.state_file.exists()
    assert f"embedded: stale state file removed (pid {dead_pid} dead)" in d.tried
    assert cli.calls == [["foundry", "server", "status"]]


def test_classic_cli_when_new_cli_has_no_server_command(tmp_path):
    cli = FakeCli({
        "server": (1, "'server' is not a foundry command"),
        "service": (0, "🟢 Model management service is running on http://127.0.0.1:5273/openai/status"),
    })
    d = discover({}, tmp_path, http=FakeFoundry({"127.0.0.1:5273": CLASSIC_ROUTES}).client(), run=cli)
    assert (d.found, d.source, d.generation) == (True, "cli", "classic")
    assert d.root_url == "http://127.0.0.1:5273"
    assert d.chat_base_url == "http://127.0.0.1:5273/v1"
    assert d.chat_models == ("Phi-4-mini-instruct-generic-gpu",)  # whisper is not a chat model
    assert cli.calls == [["foundry", "server", "status"], ["foundry", "service", "status"]]


def test_nothing_found_says_how_to_fix(tmp_path):
    d = discover({}, tmp_path, http=FakeFoundry({}).client(), run=FakeCli(None))
    assert not d.found and d.source is None
    assert "./stack foundry.serve --model-path DIR" in d.reason and "\n" not in d.reason
    assert d.tried == ("env: FOUNDRY_LOCAL_ENDPOINT not set", "embedded: not running", "cli: `foundry` is not installed")


def test_cli_service_not_running(tmp_path):
    cli = FakeCli({"server": (1, "not running"), "service": (0, "🔴 Model management service is not running!")})
    d = discover({}, tmp_path, http=FakeFoundry({}).client(), run=cli)
    assert not d.found
    assert d.tried[-1] == "cli: `foundry server status` shows no URL (exit 1); `foundry service status` shows no URL (exit 0)"


def test_cli_url_that_does_not_answer(tmp_path):
    cli = FakeCli({"server": (0, "running on http://127.0.0.1:9")})
    d = discover({}, tmp_path, http=FakeFoundry({}).client(), run=cli)
    assert not d.found and d.source == "cli" and d.root_url == "http://127.0.0.1:9"
    assert d.reason.endswith("— check `foundry service status` / `foundry server status`")


def test_status_ok_but_loaded_route_broken(tmp_path):
    routes = {"/status": {}}  # /models/loaded -> 404
    d = discover({"FOUNDRY_LOCAL_ENDPOINT": "http://127.0.0.1:1"}, tmp_path,
                 http=FakeFoundry({"127.0.0.1:1": routes}).client(), run=FakeCli(None))
    assert not d.found and d.generation == "sdk" and "loaded-models route (HTTP 404)" in d.reason


@pytest.mark.parametrize("body", ["<html>", json.dumps({"status": "ok"})])
def test_non_json_or_odd_status_bodies(tmp_path, body):
    def handler(request):
        if request.url.path == "/status":
            return httpx.Response(200, text=body)
        if request.url.path.endswith("/models/loaded"):
            return httpx.Response(200, json=[])
        return httpx.Response(404)

    d = discover({"FOUNDRY_LOCAL_ENDPOINT": "http://127.0.0.1:1"}, tmp_path,
                 http=httpx.Client(transport=httpx.MockTransport(handler)), run=FakeCli(None))
    assert d.found == (body != "<html>")
