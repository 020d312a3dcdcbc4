"""/probe resolution and on-demand probing: only configured names and allowed URLs,
keys only where configured, canaries on their interval (httpx.MockTransport, fake clock)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx  # the exporter's client library (exporter/foundry_exporter/httpio.py)
import pytest

from foundry_exporter.config import load_config
from foundry_exporter.httpio import make_client
from foundry_exporter.ondemand import OnDemand, Refusal, resolve
from foundry_exporter.probes import ProbeContext
from foundry_exporter.results import ProbeResult
from foundry_exporter.state import Store, fold, initial_state
from tests.unit.exporter.fakes import FakeClock, delta, sse

MODEL = "m-generic-cpu:1"
CONFIG = """
targets:
  - {name: f, kind: foundry, url: "http://f:1", api_key_env: F_KEY}
modules:
  keyed: {kind: openai, api_key_env: M_KEY, canary: {interval: 30s}}
  other: {kind: openai, api_key_env: O_KEY}
probe_urls:
  - {url: "http://Allowed:2/v1/", modules: [keyed, openwebui]}
"""
ENV = {"F_KEY": "target-secret", "M_KEY": "module-secret", "O_KEY": "other-secret"}


@pytest.fixture
def config(tmp_path: Path):
    path = tmp_path / "c.yml"
    path.write_text(CONFIG)
    return load_config(path, environ=ENV)


def test_configured_name_resolves_to_the_configured_target_only_without_module(config) -> None:
    assert resolve(config, "f", None) is config.targets[0]
    refusal = resolve(config, "f", "keyed")
    assert refusal == Refusal("target 'f' is configured: its probes and key come from the "
                              "config; drop the module parameter")


@pytest.mark.parametrize(("target", "module", "status", "message"), [
    ("http://evil:1", "keyed", 403, "target 'http://evil:1' is neither a configured target (f) "
     "nor listed under probe_urls in the exporter config"),
    ("127.0.0.1:9", "foundry", 403, "target '127.0.0.1:9' is neither a configured target (f) "
     "nor listed under probe_urls in the exporter config"),
    ("http://allowed:2/v1?x=http://evil:1", "keyed", 400,
     "target 'http://allowed:2/v1?x=http://evil:1' has a query or fragment; give the base URL only"),
    ("http://allowed:2/v1?", "keyed", 400,
     "target 'http://allowed:2/v1?' has a query or fragment; give the base URL only"),
    ("http://allowed:2/v1#", "keyed", 400,
     "target 'http://allowed:2/v1#' has a query or fragment; give the base URL only"),
    ("http://allowed:2@evil:1/v1", "keyed", 400, "target 'http://allowed:2@evil:1/v1' has "
     "credentials before @; put a key in a module's api_key_env instead"),
    ("http://allowed:2/v1/x", "keyed", 403, "target 'http://allowed:2/v1/x' is neither a "
     "configured target (f) nor listed under probe_urls in the exporter config"),
    ("ftp://allowed:2/v1", "keyed", 400,
     "target 'ftp://allowed:2/v1' is not an http(s) URL; write it like http://127.0.0.1:5273"),
    ("http://allowed:2/v1", "other", 403,
     "module 'other' is not allowed for http://allowed:2/v1 (probe_urls allows: keyed, openwebui)"),
    ("http://allowed:2/v1", "foundry", 403,
     "module 'foundry' is not allowed for http://allowed:2/v1 (probe_urls allows: keyed, openwebui)"),
    ("http://allowed:2/v1", None, 400,
     "module parameter is missing; http://allowed:2/v1 allows: keyed, openwebui"),
])
def test_everything_else_is_refused_with_a_reason(config, target, module, status, message) -> None:
    assert resolve(config, target, module) == Refusal(message, status)


@pytest.mark.parametrize("spelling", ["http://allowed:2/v1", "http://ALLOWED:2/v1/", "allowed:2/v1"])
def test_an_allowed_url_gets_the_module_it_names(config, spelling: str) -> None:
    target = resolve(config, spelling, "keyed")
    assert (target.name, target.url, target.module) == (
        "http://allowed:2/v1", "http://allowed:2/v1", config.modules["keyed"])


def test_no_probe_urls_by_default(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("targets: []\n")
    config = load_config(path, environ={})
    assert config.probe_urls == ()
    assert isinstance(resolve(config, "http://127.0.0.1:5273", "foundry"), Refusal)


class Upstream:
    """A MockTransport handler that records (method, url, authorization) per request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, str(request.url), request.headers.get("authorization")))
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": MODEL}]})
        body = sse({"choices": [{"delta": {"role": "assistant"}}]}) + delta("ok") \
            + delta(finish="stop") + delta(usage=1) + sse("[DONE]")
        return httpx.Response(200, stream=httpx.ByteStream(body),
                              headers={"content-type": "text/event-stream"})

    def chats(self) -> int:
        return sum(1 for m, _, _ in self.seen if m == "POST")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def _ondemand(config, loop, upstream: Upstream, clock: FakeClock, store: Store) -> OnDemand:
    client = make_client(httpx.MockTransport(upstream))
    return OnDemand(config, ProbeContext(client, clock.clock()), loop, store.get)


def test_url_canary_runs_at_most_once_per_module_canary_interval(config, loop) -> None:
    upstream, clock = Upstream(), FakeClock()
    probe = _ondemand(config, loop, upstream, clock, Store(initial_state(config.targets)))
    bodies = []
    for t in (0.0, 10.0, 29.0, 30.0):
        clock.t = t
        status, _, body = probe("http://allowed:2/v1", "keyed", 5.0)
        assert status == 200
        bodies.append(body.decode())
    assert upstream.chats() == 2  # at 0 s and 30 s (interval 30 s), never in between
    for body in bodies:  # the cached canary is still served between runs
        assert f'foundry_chat_last_ttft_seconds{{model="{MODEL}",target="http://allowed:2/v1"}}' in body
    # The module's key, only to the URL its entry allows (its listings, canary and, before
    # each due canary, the gateway activity report); nothing else was contacted.
    assert {(url.split("/v1")[0].removesuffix("/gateway/activity"), auth)
            for _, url, auth in upstream.seen} == {("http://allowed:2", "Bearer module-secret")}


def test_configured_name_serves_the_cached_results_and_sends_nothing(config, loop) -> None:
    upstream, clock = Upstream(), FakeClock()
    result = ProbeResult("f", "models", True, 0.01, 1.0, models=(MODEL,))
    store = Store(fold(initial_state(config.targets), (result,), 1.0))
    probe = _ondemand(config, loop, upstream, clock, store)
    for _ in range(3):
        status, _, body = probe("f", None, 5.0)
        assert status == 200
        assert 'foundry_probes_total{probe="models",target="f"} 1.0' in body.decode()
        assert 'foundry_probes_total{probe="chat",target="f"} 0.0' in body.decode()
    assert upstream.seen == []


def test_refusals_send_nothing(config, loop) -> None:
    upstream = Upstream()
    probe = _ondemand(config, loop, upstream, FakeClock(), Store(initial_state(config.targets)))
    for target, module in [("http://evil:1", "keyed"), ("f", "keyed"),
                           ("http://allowed:2/v1?", "keyed"), ("http://allowed:2/v1", "other")]:
        status, _, body = probe(target, module, 5.0)
        assert status in (400, 403), body
    assert upstream.seen == []
