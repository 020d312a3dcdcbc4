"""The exporter's canary through the gateway, in front of the real Foundry Local runtime:
relayed, never counted as real traffic; /gateway/activity is the gateway's own, key only."""

from __future__ import annotations

import asyncio
import time

import httpx

from foundry_exporter.app import probe_context
from foundry_exporter.config import Canary, Module, Target
from foundry_exporter.probes import run_cycle
from tests.integration.gateway.conftest import AUTH, KEY
from tests.plugins.foundry import TINY_MODEL_ID

REAL = ("foundry_gateway_requests_total", "foundry_gateway_time_to_first_token_seconds_count",
        "foundry_gateway_inter_token_seconds_count", "foundry_gateway_tokens_total",
        "foundry_gateway_generation_seconds_total", "foundry_gateway_request_duration_seconds_count")


def _total(metrics: dict, name: str, **labels: str) -> float:
    """Sum of ``name`` over every series whose labels include ``labels``."""
    return sum(v for (n, lab), v in metrics.items()
               if n == name and set(labels.items()) <= set(lab))


def _canary_round(url: str) -> dict:
    """One round of the exporter's own probes (production clients) against ``url``."""
    target = Target("gw", url, Module("foundry", ("models", "loaded", "chat"), 10.0, api_key=KEY,
                                      canary=Canary()))

    async def go():
        async with probe_context(1 << 20) as ctx:
            return {r.probe: r for r in await run_cycle(ctx, target)}
    return asyncio.run(go())


def test_activity_is_the_gateways_own_and_needs_the_key(start_gateway, foundry_server) -> None:
    gw = start_gateway(foundry_server.root_url + "/catalogs/local", metrics_require_key=False)
    with gw.client() as c:
        assert c.get("/metrics").status_code == 200  # open on purpose here...
        refused = c.get("/gateway/activity")          # ...the activity report never is
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert c.get("/gateway/activity", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/gateway/activity", headers=AUTH).status_code == 405
        answer = c.get("/gateway/activity", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json() == {"in_flight": 0, "idle_seconds": None, "last_seen_unix": None}
    # A plain Foundry Local has no such route: the exporter then runs its canary as before.
    assert httpx.get(f"{foundry_server.root_url}/gateway/activity", timeout=10).status_code == 404


def test_the_canary_is_relayed_but_only_a_real_chat_counts(start_gateway, foundry_server) -> None:
    gw = start_gateway(foundry_server.root_url + "/catalogs/local")
    before = gw.metrics()
    results = _canary_round(gw.url)
    assert all(r.ok for r in results.values()), {p: r.detail for p, r in results.items()}
    assert results["chat"].chat.output_tokens  # a real completion went through to Foundry
    after = gw.metrics()
    assert _total(after, "foundry_gateway_canary_requests_total", route="chat", code="200") \
        == _total(before, "foundry_gateway_canary_requests_total", route="chat", code="200") + 1
    for name in REAL:
        assert _total(after, name, model=TINY_MODEL_ID) == 0, name
    assert _total(after, "foundry_gateway_requests_total", route="chat") == 0
    assert _total(after, "foundry_gateway_in_flight_requests") == 0
    with gw.client(headers=AUTH) as c:
        assert c.get("/gateway/activity").json()["idle_seconds"] is None  # no activity either

        # A user's chat (no mark): counted, and it is what the activity report shows.
        sent = time.time()
        chat = c.post("/v1/chat/completions", json={
            "model": TINY_MODEL_ID, "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8, "stream": True})
        assert chat.status_code == 200 and b"[DONE]" in chat.content
        activity = c.get("/gateway/activity").json()
    real = gw.metrics()
    assert _total(real, "foundry_gateway_requests_total", route="chat", code="200") == 1
    assert _total(real, "foundry_gateway_time_to_first_token_seconds_count", model=TINY_MODEL_ID) == 1
    assert _total(real, "foundry_gateway_canary_requests_total") == \
        _total(after, "foundry_gateway_canary_requests_total")
    assert activity["in_flight"] == 0
    assert 0 <= activity["idle_seconds"] < 30
    assert sent - 1 <= activity["last_seen_unix"] <= time.time() + 1
