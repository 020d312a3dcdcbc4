"""Several upstreams behind one gateway: the real Foundry runtime, a local upstream that
fails on demand and a TLS "cloud" that wants its own key (tests/plugins/openai_standin.py).

The real-hosts version (three network namespaces, each a real Foundry behind an
edge gateway) is tests/e2e/fleet/test_fleet_e2e.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from foundry_gateway.config import load_config
from foundry_gateway.upstreams import pool
from tests.integration.gateway.conftest import AUTH, KEY, RunningGateway, sample
from tests.plugins.common import wait_for
from tests.plugins.foundry import TINY_MODEL_ID
from tests.plugins.openai_standin import REPLY, OpenAIStandIn

CLOUD_KEY = "cloud-key-0123456789abcdef"
EDGE_KEY = "edge-key-0123456789abcdefg"
CLOUD_MODEL = "gpt-standin"


def _chat(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Say hi"}],
            "max_tokens": 8, "temperature": 0, **extra}


@pytest.fixture
def cloud(tmp_path: Path):
    server = OpenAIStandIn((CLOUD_MODEL,), CLOUD_KEY, tls_dir=tmp_path, name="cloud").start()
    yield server
    server.stop()


@pytest.fixture
def flaky():
    """A local upstream (an edge gateway's shape: key, /models/loaded) that fails on demand."""
    server = OpenAIStandIn((TINY_MODEL_ID, "flaky-only"), EDGE_KEY, name="flaky").start()
    yield server
    server.stop()


def _gateway(tmp_path: Path, yml: str) -> RunningGateway:
    path = tmp_path / "fleet.yml"
    path.write_text(yml)
    config = load_config(path, environ={"GATEWAY_API_KEY": KEY, "CLOUD_KEY": CLOUD_KEY,
                                        "EDGE_KEY": EDGE_KEY})
    return RunningGateway(config).start()


@pytest.fixture
def fleet(tmp_path, foundry_server, flaky, cloud):
    gw = _gateway(tmp_path, f"""
upstreams:
  - {{name: real, url: "{foundry_server.root_url}/catalogs/local", models: ["{TINY_MODEL_ID}"]}}
  - {{name: flaky, url: "{flaky.url}", api_key_env: EDGE_KEY, models: [flaky-only]}}
  - {{name: cloud, kind: cloud, url: "{cloud.url}", api_key_env: CLOUD_KEY,
     models: [{CLOUD_MODEL}], ca_file: "{cloud.ca_file}"}}
routing:
  routes:
    - {{name: flaky-first, models: [flaky-only, "{TINY_MODEL_ID}"]}}
    - {{name: private, models: [flaky-only], local_only: true}}
""")
    yield gw
    gw.stop()


def test_the_model_list_is_the_union_once_per_id(fleet) -> None:
    with fleet.client(headers=AUTH) as c:
        ids = [m["id"] for m in c.get("/v1/models").json()["data"]]
    assert sorted(ids) == sorted([TINY_MODEL_ID, "flaky-only", CLOUD_MODEL, "flaky-first",
                                  "private"])


def test_each_answer_names_its_upstream(fleet, cloud) -> None:
    with fleet.client(headers=AUTH) as c:
        r = c.post("/v1/chat/completions", json=_chat("flaky-only"))
        assert r.status_code == 200 and r.headers["x-foundry-upstream"] == "flaky"
        r = c.post("/v1/chat/completions", json=_chat(CLOUD_MODEL))
        assert r.status_code == 200 and r.headers["x-foundry-upstream"] == "cloud"
        assert r.json()["choices"][0]["message"]["content"] == REPLY
    assert [q["model"] for q in cloud.requests] == [CLOUD_MODEL]
    m = fleet.metrics()
    assert sample(m, "foundry_gateway_upstream_requests_total", upstream="cloud", kind="cloud",
                  code="200") == 1
    assert sample(m, "foundry_gateway_upstream_requests_total", upstream="flaky", kind="local",
                  code="200") == 1


def test_a_failure_before_the_first_byte_is_retried_on_the_next_upstream(fleet, flaky) -> None:
    flaky.mode = "fail500"
    with fleet.client(headers=AUTH) as c, \
            c.stream("POST", "/v1/chat/completions", json=_chat("flaky-first", stream=True)) as r:
        body = r.read()
        assert r.status_code == 200, body
        assert r.headers["x-foundry-upstream"] == "real"
        assert r.headers["x-foundry-model"] == TINY_MODEL_ID
    assert body.count(b"data: [DONE]") == 1  # one answer, not a failed one and a good one
    assert len(flaky.requests) == 1
    m = fleet.metrics()
    assert sample(m, "foundry_gateway_upstream_retries_total", upstream="flaky") == 1
    assert sample(m, "foundry_gateway_upstream_failures_total", upstream="flaky",
                  reason="http_5xx") == 1
    assert sample(m, "foundry_gateway_upstream_requests_total", upstream="real", kind="local",
                  code="200") == 1


def test_a_started_stream_is_never_sent_twice(fleet, flaky) -> None:
    """Cut after its first chunk: the client gets that chunk and an error event, and the
    request is not sent to the next candidate (it would answer a second time)."""
    flaky.mode = "cut"
    with fleet.client(headers=AUTH) as c:
        r = c.post("/v1/chat/completions", json=_chat("flaky-first", stream=True))
    assert r.status_code == 200 and r.headers["x-foundry-upstream"] == "flaky"
    assert r.text.count('"content"') == 1 and '"code": "reset"' in r.text
    assert len(flaky.requests) == 1
    m = fleet.metrics()
    assert sample(m, "foundry_gateway_upstream_requests_total", upstream="real", kind="local",
                  code="200") == 0
    assert sample(m, "foundry_gateway_upstream_failures_total", upstream="flaky",
                  reason="reset") == 1


def test_a_failing_upstream_is_taken_out_and_probed_back_in(tmp_path, fleet, flaky) -> None:
    port = flaky.port
    flaky.stop()  # refused from now on
    with fleet.client(headers=AUTH) as c:
        for _ in range(pool.OUT_AFTER):
            r = c.post("/v1/chat/completions", json=_chat("flaky-first"))
            assert r.status_code == 200 and r.headers["x-foundry-upstream"] == "real"
        assert sample(fleet.metrics(), "foundry_gateway_upstream_up", upstream="flaky",
                      kind="local") == 0
        r = c.post("/v1/chat/completions", json=_chat("flaky-only"))
        assert r.status_code == 503
        assert r.json()["error"]["message"].startswith("no upstream can serve 'flaky-only' now; "
                                                       "out of rotation: flaky (")
        back = OpenAIStandIn((TINY_MODEL_ID, "flaky-only"), EDGE_KEY, port=port,
                             name="flaky").start()
        try:
            started = time.monotonic()
            wait_for(lambda: sample(fleet.metrics(), "foundry_gateway_upstream_up",
                                    upstream="flaky", kind="local") == 1,
                     "flaky back in rotation", timeout=3 * pool.PROBE_INTERVAL, interval=0.1)
            print(f"\nback in rotation {time.monotonic() - started:.1f} s after it came back")
            r = c.post("/v1/chat/completions", json=_chat("flaky-only"))
            assert r.status_code == 200 and r.headers["x-foundry-upstream"] == "flaky"
        finally:
            back.stop()


def test_a_local_only_route_never_reaches_the_cloud(fleet, flaky, cloud) -> None:
    flaky.mode = "fail500"
    with fleet.client(headers=AUTH) as c:
        for _ in range(pool.OUT_AFTER):
            c.post("/v1/chat/completions", json=_chat("private"))
        r = c.post("/v1/chat/completions", json=_chat("private"))
    assert r.status_code == 503
    assert "local-only" in r.json()["error"]["message"]
    assert cloud.requests == []


def _fallback_gateway(tmp_path, flaky, cloud, extra: str = "") -> RunningGateway:
    return _gateway(tmp_path, f"""
upstreams:
  - {{name: flaky, url: "{flaky.url}", api_key_env: EDGE_KEY, models: [flaky-only]}}
  - {{name: cloud, kind: cloud, url: "{cloud.url}", api_key_env: CLOUD_KEY,
     models: [{CLOUD_MODEL}], ca_file: "{cloud.ca_file}"}}
routing:
  cloud_fallback: {CLOUD_MODEL}
{extra}""")


def test_local_first_falls_back_to_the_cloud_only_when_local_cannot(tmp_path, flaky, cloud) -> None:
    gw = _fallback_gateway(tmp_path, flaky, cloud)
    try:
        with gw.client(headers=AUTH) as c:
            r = c.post("/v1/chat/completions", json=_chat("flaky-only"))
            assert r.headers["x-foundry-upstream"] == "flaky" and cloud.requests == []
            flaky.mode = "fail500"
            r = c.post("/v1/chat/completions", json=_chat("flaky-only", stream=True))
            assert r.status_code == 200
            assert r.headers["x-foundry-upstream"] == "cloud"
            assert r.headers["x-foundry-model"] == CLOUD_MODEL
            assert [q["model"] for q in cloud.requests] == [CLOUD_MODEL]
    finally:
        gw.stop()


def test_a_local_only_model_with_every_local_host_down_fails_clearly(tmp_path, flaky,
                                                                     cloud) -> None:
    gw = _fallback_gateway(tmp_path, flaky, cloud, "  local_only: [flaky-only]\n")
    flaky.stop()
    try:
        with gw.client(headers=AUTH) as c:
            codes = [c.post("/v1/chat/completions", json=_chat("flaky-only")).status_code
                     for _ in range(3)]
            last = c.post("/v1/chat/completions", json=_chat("flaky-only")).json()
    finally:
        gw.stop()
    assert codes[-1] == 503 and all(code in (502, 503) for code in codes)
    assert last["error"]["message"].startswith("'flaky-only' is local-only and no local upstream")
    assert cloud.requests == []


def test_an_unverifiable_cloud_certificate_is_refused(tmp_path, flaky, cloud) -> None:
    gw = _gateway(tmp_path, f"""
upstreams:
  - {{name: flaky, url: "{flaky.url}", api_key_env: EDGE_KEY, models: [flaky-only]}}
  - {{name: cloud, kind: cloud, url: "{cloud.url}", api_key_env: CLOUD_KEY,
     models: [{CLOUD_MODEL}]}}
""")
    try:
        with gw.client(headers=AUTH) as c:
            r = c.post("/v1/chat/completions", json=_chat(CLOUD_MODEL))
    finally:
        gw.stop()
    assert r.status_code == 502
    assert "certificate verify failed" in r.json()["error"]["message"].lower()
    assert cloud.requests == []


def test_azure_style_api_key_header(tmp_path, flaky, cloud) -> None:
    gw = _gateway(tmp_path, f"""
upstreams:
  - {{name: flaky, url: "{flaky.url}", api_key_env: EDGE_KEY, models: [flaky-only]}}
  - {{name: azure, kind: cloud, url: "{cloud.url}", api_key_env: CLOUD_KEY, auth_header: api-key,
     models: [{CLOUD_MODEL}], ca_file: "{cloud.ca_file}"}}
""")
    try:
        with gw.client(headers=AUTH) as c:
            r = c.post("/v1/chat/completions", json=_chat(CLOUD_MODEL))
    finally:
        gw.stop()
    assert r.status_code == 200 and r.headers["x-foundry-upstream"] == "azure"


def test_the_loaded_listing_is_the_local_union(fleet) -> None:
    with fleet.client(headers=AUTH) as c:
        assert sorted(c.get("/models/loaded").json()) == sorted([TINY_MODEL_ID, "flaky-only"])


def test_unknown_model_is_404_and_never_forwarded(fleet, flaky, cloud) -> None:
    with fleet.client(headers=AUTH) as c:
        r = c.post("/v1/chat/completions", json=_chat("no-such-model"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert flaky.requests == [] and cloud.requests == []


def test_the_upstreams_report_and_a_pinned_request(fleet, cloud) -> None:
    with fleet.client(headers=AUTH) as c:
        rep = c.get("/gateway/upstreams").json()
        assert [(u["name"], u["kind"], u["up"]) for u in rep["upstreams"]] == [
            ("real", "local", True), ("flaky", "local", True), ("cloud", "cloud", True)]
        assert rep["upstreams"][1]["models"] == [TINY_MODEL_ID, "flaky-only"]
        assert rep["upstreams"][2]["url"] == cloud.url  # origin only: never a key
        assert [r["name"] for r in rep["routes"]] == ["flaky-first", "private"]
        r = c.post("/v1/chat/completions", json=_chat(TINY_MODEL_ID),
                   headers={"X-Foundry-Upstream": "flaky"})
        assert r.status_code == 200 and r.headers["x-foundry-upstream"] == "flaky"
        r = c.post("/v1/chat/completions", json=_chat("private"),
                   headers={"X-Foundry-Upstream": "cloud"})
        assert r.status_code == 503 and cloud.requests == []  # local-only stays local
        r = c.post("/v1/chat/completions", json=_chat(TINY_MODEL_ID),
                   headers={"X-Foundry-Upstream": "nope"})
        assert r.status_code == 400 and "/gateway/upstreams" in r.json()["error"]["message"]
    with httpx.Client(base_url=fleet.url) as anonymous:
        assert anonymous.get("/gateway/upstreams").status_code == 401
