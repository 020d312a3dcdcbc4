"""Probes against httpx.MockTransport: URLs, parsing, canary timing, failure reasons."""

from __future__ import annotations

import asyncio
import json

import httpx2 as httpx  # the exporter's client library (exporter/foundry_exporter/httpio.py)
import pytest

from foundry_exporter.config import Canary, Module, Target
from foundry_exporter.httpio import make_client
from foundry_exporter.probes import ProbeContext, run_cycle, run_probe
from foundry_exporter.probes.listing import parse_model_list
from tests.unit.exporter.fakes import FakeClock, TimedStream, delta, sse

MODEL = "tiny-chat-generic-cpu:1"


def _target(kind: str = "foundry", url: str = "http://f:1/catalogs/local", **canary) -> Target:
    probes = {"foundry": ("models", "loaded", "chat"), "openai": ("models", "chat"),
              "openwebui": ("health",)}[kind]
    return Target("t", url, Module(kind, probes, 5.0, api_key="sk-test", canary=Canary(**canary)))


def _run(handler, target: Target, probe: str | None = None, clock: FakeClock | None = None):
    clock = clock or FakeClock()

    async def go():
        async with make_client(httpx.MockTransport(handler)) as client:
            ctx = ProbeContext(client, clock.clock(), max_body_bytes=4096)
            if probe:
                return await run_probe(ctx, target, probe)
            return {r.probe: r for r in await run_cycle(ctx, target)}

    return asyncio.run(go())


def _json(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


def test_foundry_urls_and_auto_canary_model() -> None:
    seen: list[str] = []
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        assert request.headers["authorization"] == "Bearer sk-test"
        if request.url.path.endswith("/v1/models"):
            return _json(200, {"data": [{"id": MODEL}, {"id": "other:1"}]})
        if request.url.path.endswith("/models/loaded"):
            return _json(200, ["whisper-tiny-generic-cpu:1", MODEL])
        body = json.loads(request.content)
        assert body == {"model": MODEL, "messages": [{"role": "user", "content": "Reply with one word: ok"}],
                        "stream": True, "stream_options": {"include_usage": True},
                        "temperature": 0, "max_tokens": 8}
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              stream=TimedStream(clock, [
                                  (0.010, delta("")), (0.050, delta("o")), (0.060, delta("k")),
                                  (0.070, delta(finish="stop")), (0.080, delta(usage=3)),
                                  (0.090, sse("[DONE]"))]))

    results = _run(handler, _target(), clock=clock)
    assert sorted(seen) == ["GET /catalogs/local/models/loaded", "GET /catalogs/local/v1/models",
                            "POST /catalogs/local/v1/chat/completions"]
    assert results["models"].models == (MODEL, "other:1")
    assert results["loaded"].models == ("whisper-tiny-generic-cpu:1", MODEL)
    chat = results["chat"].chat
    assert results["chat"].ok and chat is not None
    assert chat.model == MODEL
    assert chat.ttft == pytest.approx(0.050)
    assert chat.duration == pytest.approx(0.090)
    assert chat.generation == pytest.approx(0.040)
    assert chat.output_tokens == 3
    assert chat.tokens_per_second == pytest.approx(75.0)


def test_classic_loaded_models_fallback() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/models/loaded":
            return _json(404, {"error": "nope"})
        assert request.url.path == "/openai/loadedmodels"
        return _json(200, ["phi-4-mini-generic-cpu:1"])

    result = _run(handler, _target(url="http://f:1"), "loaded")
    assert result.ok and result.models == ("phi-4-mini-generic-cpu:1",)


def test_openai_kind_uses_base_url_paths() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/models"
        return _json(200, {"object": "list", "data": [{"id": "m"}]})

    assert _run(handler, _target("openai", url="http://o:1/v1"), "models").models == ("m",)


@pytest.mark.parametrize(("status", "body", "reason"), [
    (401, {}, "unauthorized"), (403, {}, "unauthorized"), (404, {}, "not_found"),
    (400, {"error": {"message": "Model not loaded"}}, "model_not_loaded"),
    (400, {"error": {"message": "bad"}}, "http_4xx"), (503, {}, "http_5xx"),
    (302, {}, "invalid_response"),
])
def test_http_status_reasons(status: int, body: object, reason: str) -> None:
    result = _run(lambda _: _json(status, body), _target(model=MODEL), "chat")
    assert (result.ok, result.reason) == (False, reason)


@pytest.mark.parametrize(("response", "reason"), [
    (httpx.Response(200, text="<html>login</html>", headers={"content-type": "text/html"}),
     "invalid_response"),
    (httpx.Response(200, content=b"{", headers={"content-type": "application/json"}),
     "invalid_response"),
    (httpx.Response(200, json={"data": [{"name": None}]}), "invalid_response"),
    (httpx.Response(200, content=b"x" * 5000), "too_large"),
    (httpx.Response(200, content=b"[]", headers={"content-length": "99999999"}), "too_large"),
])
def test_listing_failures(response: httpx.Response, reason: str) -> None:
    result = _run(lambda _: response, _target(), "models")
    assert (result.ok, result.reason) == (False, reason)


def test_transport_errors_are_data() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    assert _run(refuse, _target(), "models").reason == "connection"
    assert _run(slow, _target(), "models").reason == "timeout"


def _stream(clock: FakeClock, chunks: list[bytes]):
    timed = [(0.01 * (i + 1), c) for i, c in enumerate(chunks)]
    return lambda _: httpx.Response(200, headers={"content-type": "text/event-stream"},
                                    stream=TimedStream(clock, timed))


@pytest.mark.parametrize(("chunks", "reason"), [
    ([delta("a"), delta("b")], "stream_cut"),
    ([delta("a"), delta(finish="stop"), sse("[DONE]")], "no_usage"),
    ([sse("{not json")], "invalid_response"),
    ([delta(finish="stop"), delta(usage=0), sse("[DONE]")], "invalid_response"),
    ([delta("x" * 5000)], "too_large"),
])
def test_canary_stream_failures(chunks: list[bytes], reason: str) -> None:
    clock = FakeClock()
    result = _run(_stream(clock, chunks), _target(model=MODEL), "chat", clock)
    assert (result.ok, result.reason) == (False, reason)


def test_no_usage_keeps_the_timings() -> None:
    clock = FakeClock()
    result = _run(_stream(clock, [delta("a"), delta(finish="stop"), sse("[DONE]")]),
                  _target(model=MODEL), "chat", clock)
    assert result.chat is not None and result.chat.ttft == pytest.approx(0.01)
    assert result.chat.output_tokens is None


def test_auto_canary_without_loaded_model_is_no_chat_model() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v1/models"):
            return _json(200, {"data": []})
        return _json(200, ["whisper-tiny-generic-cpu:1"])

    assert _run(handler, _target())["chat"].reason == "no_chat_model"


def test_chat_alone_fetches_its_auto_model() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models/loaded"):
            return _json(200, [])
        raise AssertionError(request.url)

    assert _run(handler, _target(), "chat").reason == "no_chat_model"


def test_a_bug_in_a_probe_is_contained() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("bug")

    result = _run(handler, _target(), "models")
    assert (result.ok, result.reason) == (False, "invalid_response")
    assert "RuntimeError" in result.detail


def test_openwebui_health() -> None:
    assert _run(lambda _: _json(200, {"status": True}), _target("openwebui"), "health").ok
    bad = _run(lambda _: _json(200, {"status": False}), _target("openwebui"), "health")
    assert bad.reason == "invalid_response"


@pytest.mark.parametrize(("doc", "ids"), [
    ({"data": [{"id": "a"}, {"id": "b"}]}, ("a", "b")),
    (["a", "a", "b"], ("a", "b")),
    ([{"name": "a"}, {"modelId": "b"}], ("a", "b")),
    ({"models": ["a"]}, ("a",)),
])
def test_parse_model_list(doc: object, ids: tuple[str, ...]) -> None:
    assert parse_model_list(doc) == ids
