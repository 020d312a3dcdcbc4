"""The gateway against an upstream that misbehaves: clean errors, counted reasons."""

from __future__ import annotations

import json

from foundry_gateway.config import Limits, Timeouts
from perf.gateway_rawclient import chat_request, stream_chat
from tests.integration.gateway.conftest import AUTH, KEY, sample
from tests.integration.gateway.faultserver import GARBAGE_BODY, MODEL
from tests.plugins.common import free_port

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
FAST = Timeouts(connect=1, first_byte=0.3, idle=0.3, total=1.0)


def _stream(gw, body=CHAT):
    return stream_chat("127.0.0.1", gw.port,
                       chat_request("127.0.0.1", gw.port, "/v1/chat/completions", body, KEY))


def _error_event(body: bytes) -> dict:
    last = [e for e in body.split(b"\n\n") if e.strip()][-1]
    return json.loads(last.removeprefix(b"data: "))["error"]


def _errors(gw, reason: str) -> float:
    return sample(gw.metrics(), "foundry_gateway_upstream_errors_total", reason=reason)


def _requests(gw, code: str, model: str = "none") -> float:
    return sample(gw.metrics(), "foundry_gateway_requests_total", route="chat", model=model,
                  code=code)


def test_slow_headers_give_504_and_header_timeout(start_gateway, gateway_faults) -> None:
    gw = start_gateway(gateway_faults.url("slowheaders"), timeouts=FAST)
    with gw.client(headers=AUTH) as c:
        r = c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "header_timeout"
    assert _errors(gw, "header_timeout") == 1


def test_garbage_sse_is_relayed_unchanged_and_counted(start_gateway, gateway_faults) -> None:
    gw = start_gateway(gateway_faults.url("garbage"), timeouts=FAST)
    got = _stream(gw)
    assert got.status == 200 and got.body == GARBAGE_BODY
    assert _errors(gw, "invalid_sse") == 1


def test_reset_mid_stream_ends_with_an_error_event(start_gateway, gateway_faults) -> None:
    gw = start_gateway(gateway_faults.url("reset"), timeouts=FAST)
    got = _stream(gw)
    assert got.status == 200 and got.content_chunks == 1
    assert _error_event(got.body)["code"] == "reset"
    assert _errors(gw, "reset") == 1
    assert _requests(gw, "502", MODEL) == 1  # the upstream served it: a bounded label


def test_idle_upstream_is_cut_with_idle_timeout(start_gateway, gateway_faults) -> None:
    gw = start_gateway(gateway_faults.url("idle"), timeouts=FAST)
    got = _stream(gw)
    assert _error_event(got.body)["code"] == "idle_timeout"
    assert _errors(gw, "idle_timeout") == 1
    assert _requests(gw, "504", MODEL) == 1


def test_endless_stream_is_cut_at_the_total_timeout(start_gateway, gateway_faults) -> None:
    gw = start_gateway(gateway_faults.url("endless"), timeouts=FAST)
    got = _stream(gw)
    assert got.content_chunks > 10
    assert _error_event(got.body)["code"] == "total_timeout"
    assert _errors(gw, "total_timeout") == 1


def test_endless_stream_is_cut_at_the_size_cap(start_gateway, gateway_faults) -> None:
    gw = start_gateway(gateway_faults.url("endless"), limits=Limits(max_response_bytes=4096))
    got = _stream(gw)
    assert _error_event(got.body)["code"] == "too_large"
    assert len(got.body) < 4096 + 1024
    assert _errors(gw, "too_large") == 1


def test_redirects_are_never_followed_nor_passed_on(start_gateway, gateway_faults) -> None:
    gw = start_gateway(gateway_faults.url("redirect"), timeouts=FAST)
    with gw.client(headers=AUTH) as c:
        r = c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 502 and "location" not in r.headers
    assert r.json()["error"]["code"] == "redirect"
    assert _errors(gw, "redirect") == 1


def test_upstream_500_is_relayed_and_counted(start_gateway, gateway_faults) -> None:
    gw = start_gateway(gateway_faults.url("status500"), timeouts=FAST)
    with gw.client(headers=AUTH) as c:
        r = c.post("/v1/chat/completions", json={**CHAT, "stream": False})
    assert r.status_code == 500 and r.json() == {"error": {"message": "boom"}}
    assert _errors(gw, "http_5xx") == 1


def test_no_upstream_listening_gives_502_connect(start_gateway) -> None:
    gw = start_gateway(f"http://127.0.0.1:{free_port()}", timeouts=FAST)
    with gw.client(headers=AUTH) as c:
        chat = c.post("/v1/chat/completions", json=CHAT)
        models = c.get("/v1/models")
    assert (chat.status_code, models.status_code) == (502, 502)
    assert chat.json()["error"]["code"] == "connect"
    assert _errors(gw, "connect") == 2
    assert sample(gw.metrics(), "foundry_gateway_in_flight_requests") == 0


def test_a_non_http_upstream_is_a_protocol_error(start_gateway, gateway_faults) -> None:
    gw = start_gateway(gateway_faults.url("nothttp"), timeouts=FAST)
    with gw.client(headers=AUTH) as c:
        r = c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 502 and r.json()["error"]["code"] == "protocol"
    assert _errors(gw, "protocol") == 1
