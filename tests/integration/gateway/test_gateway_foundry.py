"""The gateway in front of the real Foundry Local runtime (tiny model)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import h11
import httpx
import pytest

from foundry_gateway import server
from foundry_gateway.upstreams import connection as upstream
from perf.gateway_rawclient import chat_request, stream_chat
from stackctl.errors import StackError
from stackctl.foundry import stop
from tests.integration.gateway.conftest import AUTH, KEY, sample
from tests.plugins.foundry import TINY_MODEL_ID, serve_tiny_model

_VOLATILE = re.compile(rb'"(id|created)":("[^"]*"|\d+)')


def _same(body: bytes) -> bytes:
    return _VOLATILE.sub(rb'"\1":X', body)


def _chat(**extra) -> dict:
    return {"model": TINY_MODEL_ID, "messages": [{"role": "user", "content": "Tell me a story"}],
            "max_tokens": 24, "temperature": 0, **extra}


@pytest.fixture
def gateway(start_gateway, foundry_server):
    return start_gateway(foundry_server.root_url + "/catalogs/local")


def _direct(foundry_server, body: dict):
    url = foundry_server.root_url
    port = int(url.rsplit(":", 1)[1])
    return stream_chat("127.0.0.1", port, chat_request(
        "127.0.0.1", port, "/catalogs/local/v1/chat/completions", body))


def _through(gw, body: dict):
    return stream_chat("127.0.0.1", gw.port, chat_request(
        "127.0.0.1", gw.port, "/v1/chat/completions", body, KEY))


def test_streamed_chat_is_byte_identical_and_has_no_usage_chunk(gateway, foundry_server) -> None:
    body = _chat(stream=True)
    direct, through = _direct(foundry_server, body), _through(gateway, body)
    assert through.status == direct.status == 200
    assert _same(through.body) == _same(direct.body)
    assert b'"usage"' not in through.body and through.done


def test_usage_chunk_passes_when_the_client_asks(gateway, foundry_server) -> None:
    body = _chat(stream=True, stream_options={"include_usage": True})
    direct, through = _direct(foundry_server, body), _through(gateway, body)
    assert _same(through.body) == _same(direct.body)
    assert b'"usage"' in through.body


def test_non_streamed_chat_is_byte_identical(gateway, foundry_server) -> None:
    with httpx.Client(trust_env=False, timeout=30) as c:
        direct = c.post(f"{foundry_server.chat_base_url}/chat/completions", json=_chat())
        through = c.post(f"{gateway.url}/v1/chat/completions", json=_chat(), headers=AUTH)
    assert through.status_code == direct.status_code == 200
    assert _same(through.content) == _same(direct.content)


def test_model_list_is_the_loaded_chat_models(gateway) -> None:
    with gateway.client(headers=AUTH) as c:
        listed = c.get("/v1/models").json()
        one = c.get(f"/v1/models/{TINY_MODEL_ID}")
        missing = c.get("/v1/models/whisper-tiny-generic-cpu:1")
        loaded = c.get("/models/loaded")
    assert [m["id"] for m in listed["data"]] == [TINY_MODEL_ID]
    assert one.status_code == 200 and one.json()["id"] == TINY_MODEL_ID
    assert missing.status_code == 404
    assert loaded.json() == [TINY_MODEL_ID]


def test_metrics_count_exactly_the_requests_made(gateway) -> None:
    before = gateway.metrics()
    usage = []
    for _ in range(3):
        got = _through(gateway, _chat(stream=True))
        assert got.status == 200
    with gateway.client(headers=AUTH) as c:
        for _ in range(2):
            usage.append(c.post("/v1/chat/completions", json=_chat()).json()["usage"])
        assert c.post("/v1/chat/completions", json=_chat(model="nope:1")).status_code == 404
    after = gateway.metrics()

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    m = TINY_MODEL_ID
    assert delta("foundry_gateway_requests_total", route="chat", model=m, code="200") == 5
    assert delta("foundry_gateway_requests_total", route="chat", model="other", code="404") == 1
    assert delta("foundry_gateway_time_to_first_token_seconds_count", model=m) == 3
    assert delta("foundry_gateway_request_duration_seconds_count", route="chat", model=m) == 5
    # 24 completion tokens each (max_tokens, random weights never stop early) + the two bodies'
    assert delta("foundry_gateway_tokens_total", model=m, type="completion") == \
        3 * 24 + sum(u["completion_tokens"] for u in usage)
    assert delta("foundry_gateway_tokens_total", model=m, type="prompt") == \
        5 * usage[0]["prompt_tokens"]
    assert sample(after, "foundry_gateway_in_flight_requests") == 0


def test_no_key_or_wrong_key_is_401(gateway) -> None:
    with gateway.client() as c:
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": KEY}).status_code == 401
        r = c.post("/v1/chat/completions", json=_chat())
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/metrics").status_code == 401
        assert c.get("/healthz").status_code == 200


def test_shutdown_and_model_load_are_refused_and_foundry_stays_up(gateway, foundry_server) -> None:
    with gateway.client(headers=AUTH) as c:
        shut = c.post("/shutdown")
        load = c.get("/models/load/tiny-chat")
        unload = c.get("/models/unload/tiny-chat")
    assert (shut.status_code, load.status_code, unload.status_code) == (403, 403, 403)
    assert shut.json()["error"]["code"] == "forbidden"
    with httpx.Client(trust_env=False, timeout=10) as c:
        assert c.get(f"{foundry_server.root_url}/catalogs/local/models/loaded").json() == [TINY_MODEL_ID]


def test_oversize_body_is_413(gateway) -> None:
    big = _chat(messages=[{"role": "user", "content": "x" * (5 * 1024 * 1024)}])
    with gateway.client(headers=AUTH) as c:
        r = c.post("/v1/chat/completions", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_thirty_concurrent_streams_none_lost(gateway) -> None:
    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(lambda _: _through(gateway, _chat(stream=True)), range(30)))
    assert all(r.status == 200 and r.done and r.content_chunks == 24 for r in results)


def test_foundry_dying_mid_stream_gives_a_clean_error(start_gateway, tmp_path) -> None:
    state = serve_tiny_model(tmp_path / "foundry")
    try:
        gw = start_gateway(state.root_url + "/catalogs/local")
        request = chat_request("127.0.0.1", gw.port, "/v1/chat/completions",
                               _chat(stream=True, max_tokens=4000), KEY)
        with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:
            sock.sendall(request)
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200")
            os.kill(state.pid, signal.SIGKILL)
            rest = b""
            while data := sock.recv(65536):
                rest += data
        conn = h11.Connection(h11.CLIENT)
        conn.receive_data(first + rest)
        conn.receive_data(b"")
        body = b""
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            assert event is not h11.NEED_DATA and not isinstance(event, h11.ConnectionClosed), \
                "the client's body was cut instead of ended"
            body += getattr(event, "data", b"")
        last = [e for e in body.split(b"\n\n") if e.strip()][-1]
        assert json.loads(last.removeprefix(b"data: "))["error"]["code"] == "reset"
        assert sample(gw.metrics(), "foundry_gateway_upstream_errors_total", reason="reset") == 1
    finally:
        with contextlib.suppress(StackError):  # killed above: usually nothing left to stop
            stop(tmp_path / "foundry")


def test_a_slow_client_pauses_the_upstream_and_still_gets_every_byte(
        gateway, foundry_server, monkeypatch) -> None:
    # Tiny buffers on the way to the client (high-water mark, the gateway's send
    # buffer, the client's receive buffer): the gateway must stop reading Foundry
    # while the client lags, and resume when it drains.
    monkeypatch.setattr(server, "_HIGH_WATER", 1024)
    real_init = server.ClientConnection.__init__

    def small_send_buffer(self, reader, writer) -> None:
        real_init(self, reader, writer)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    monkeypatch.setattr(server.ClientConnection, "__init__", small_send_buffer)
    paused: list[bool] = []
    real_pause = upstream._Conn.pause
    monkeypatch.setattr(upstream._Conn, "pause", lambda self: (paused.append(True),
                                                                 real_pause(self)))
    body = _chat(stream=True, max_tokens=400)
    direct = _direct(foundry_server, body)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", gateway.port))
        sock.sendall(chat_request("127.0.0.1", gateway.port, "/v1/chat/completions", body, KEY))
        time.sleep(0.5)  # the client lags: the stream is produced meanwhile
        raw = b""
        while data := sock.recv(1024):
            raw += data
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(raw)
    conn.receive_data(b"")
    got = b""
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        assert event is not h11.NEED_DATA, "the body was cut"
        got += getattr(event, "data", b"")
    assert paused, "the upstream was never paused"
    assert _same(got) == _same(direct.body) and direct.content_chunks == 400
