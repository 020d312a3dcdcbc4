"""The gateway follows a Foundry Local that came back on another port (issue 15, item 5),
with the real runtime: the user's own Foundry stops and starts again elsewhere, and the
next chat through the gateway works with no command and no configuration change.

Failure paths: with ``follow`` off the same move is a clean 502 naming the reason; a
stranger on loopback that answers 200 to everything (and records what it was sent) is
never taken for Foundry and never sees the upstream's key."""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from stackctl.errors import StackError
from stackctl.foundry import stop
from tests.integration.gateway.conftest import AUTH, sample
from tests.plugins.common import free_port
from tests.plugins.foundry import TINY_MODEL_ID, serve_tiny_model

UPSTREAM_KEY = "upstream-key-must-not-leak-0123"


def _chat(gw) -> httpx.Response:
    with gw.client() as c:
        return c.post("/v1/chat/completions", headers=AUTH, json={
            "model": TINY_MODEL_ID, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})


class _Stranger:
    """A loopback HTTP server that says 200 and '[]' to every GET, recording headers."""

    def __init__(self) -> None:
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, dict(self.headers)))
                body = b"[]" if "models" in self.path else b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def own_foundry(tmp_path):
    """A Foundry of the user's own (not the session one: this test stops and moves it)."""
    state_dir = tmp_path / "foundry"

    def start():
        return serve_tiny_model(state_dir)

    yield start, state_dir
    with contextlib.suppress(StackError):  # the test stopped it already
        stop(state_dir)


def test_chat_follows_foundry_to_its_new_port_and_the_stranger_is_left_alone(start_gateway, own_foundry):
    start, state_dir = own_foundry
    first = start()
    stranger = _Stranger()
    try:
        gw = start_gateway(first.root_url + "/catalogs/local", upstreams=(
            _upstream(first.root_url + "/catalogs/local", follow=True),))
        assert _chat(gw).status_code == 200
        stop(state_dir)
        second = start()  # a new port, as Foundry's service picks on each start
        assert second.port != first.port
        r = _chat(gw)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] is not None
        assert _chat(gw).status_code == 200  # and it stays there
        metrics = gw.metrics()
        assert sample(metrics, "foundry_gateway_upstream_errors_total", reason="connect") == 0
        assert sample(metrics, "foundry_gateway_upstream_moves_total") == 1
        # The stranger was asked (it listens on loopback) but never chosen, never sent the key.
        assert all("authorization" not in {k.lower() for k in h} for _, h in stranger.seen)
        assert {p for p, _ in stranger.seen} <= {"/status", "/openai/status", "/catalogs/local/models/loaded",
                                                 "/catalogs/local/openai/loadedmodels"}
    finally:
        stranger.close()


def test_without_follow_a_moved_foundry_is_a_502_naming_the_reason(start_gateway, own_foundry):
    start, state_dir = own_foundry
    first = start()
    gw = start_gateway(first.root_url + "/catalogs/local")
    assert _chat(gw).status_code == 200
    stop(state_dir)
    start()
    r = _chat(gw)
    assert r.status_code == 502
    assert "cannot connect to upstream" in r.text
    metrics = gw.metrics()
    assert sample(metrics, "foundry_gateway_upstream_errors_total", reason="connect") == 1
    assert sample(metrics, "foundry_gateway_upstream_moves_total") == 0


def _upstream(url: str, *, follow: bool):
    from foundry_gateway.config import Upstream

    return Upstream("up", url, UPSTREAM_KEY, follow)
