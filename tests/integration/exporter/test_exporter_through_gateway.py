"""exporter (a real process) → gateway → the real Foundry Local runtime (tiny model):
the canary measures while nobody chats and skips a round after a user's chat.

Short intervals (listings 1 s, canary 2 s) keep it to a few seconds. "Foundry saw no
canary" is counted where every request to Foundry passes: the gateway's
``foundry_gateway_canary_requests_total``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.gateway.conftest import AUTH, KEY, RunningGateway, make_config
from tests.plugins.common import free_port, wait_for
from tests.plugins.foundry import TINY_MODEL_ID

CANARY_EVERY = 2.0


@pytest.fixture
def chain(tmp_path: Path, foundry_server) -> Iterator[tuple[RunningGateway, str]]:
    gw = RunningGateway(make_config(foundry_server.root_url + "/catalogs/local")).start()
    config = tmp_path / "exporter.yml"
    config.write_text(
        "defaults: {interval: 1s, timeout: 1s}\n"
        "targets:\n"
        f"  - {{name: foundry, kind: foundry, url: '{gw.url}', api_key_env: GW_KEY,\n"
        f"     canary: {{interval: {CANARY_EVERY:g}s}}}}\n")  # yield_to_traffic: the default
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "foundry_exporter", "--config", str(config),
                             "--listen-address", f"127.0.0.1:{port}"],
                            env={**os.environ, "GW_KEY": KEY},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield gw, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        gw.stop()
        print(out)  # shown when the test failed


def _exporter(base: str) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _get(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _skips(base: str) -> float:
    return _get(_exporter(base), "foundry_canary_skipped_total", target="foundry",
                reason="real_traffic") or 0.0


def _canaries(gw: RunningGateway) -> float:
    """Canary requests the gateway relayed to Foundry (all of them pass through it)."""
    return sum(v for (n, _), v in gw.metrics().items()
               if n == "foundry_gateway_canary_requests_total")


def _real(gw: RunningGateway, name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in gw.metrics().items()
               if n == name and set(labels.items()) <= set(lab))


def test_a_users_chat_makes_the_next_canary_round_skip(chain) -> None:
    gw, base = chain
    # Nobody chats: the canary runs, through the gateway, and is not real traffic.
    wait_for(lambda: _canaries(gw) >= 1, "a first canary through the gateway", timeout=20,
             interval=0.05)
    first = _exporter(base)
    assert _get(first, "foundry_probe_success", target="foundry", probe="chat") == 1
    assert _get(first, "foundry_canary_skipped_total", target="foundry", reason="real_traffic") == 0
    assert _real(gw, "foundry_gateway_requests_total", route="chat") == 0

    # Right after a canary finished (the next one is CANARY_EVERY away), a user chats.
    seen = _canaries(gw)
    wait_for(lambda: _canaries(gw) > seen, "the next canary", timeout=10, interval=0.02)
    canaries = _canaries(gw)
    skips = _skips(base)
    with httpx.Client(trust_env=False, timeout=30) as c:
        chat = c.post(f"{gw.url}/v1/chat/completions", headers=AUTH, json={
            "model": TINY_MODEL_ID, "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True}})
    assert chat.status_code == 200
    usage = [json.loads(line[6:])["usage"] for line in chat.text.splitlines()
             if line.startswith("data: {") and '"usage"' in line and '"choices":[]' in line]

    # The next due round is skipped: counted by the exporter, and Foundry saw no canary.
    wait_for(lambda: _skips(base) > skips, "a skipped canary round", timeout=10, interval=0.05)
    assert _canaries(gw) == canaries
    during = _exporter(base)
    assert _get(during, "foundry_up", target="foundry", kind="foundry") == 1  # listings go on
    assert _get(during, "foundry_probe_success", target="foundry", probe="chat") == 1  # kept
    assert _get(during, "foundry_chat_last_ttft_seconds", target="foundry", model=TINY_MODEL_ID) > 0
    assert _get(during, "foundry_canary_last_skip_timestamp_seconds", target="foundry") > 0
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200

    # Quiet for a whole canary interval: the canary runs again.
    runs = _get(during, "foundry_probes_total", target="foundry", probe="chat")
    wait_for(lambda: _canaries(gw) > canaries, "the canary running again", timeout=10,
             interval=0.05)
    wait_for(lambda: _get(_exporter(base), "foundry_probes_total", target="foundry",
                          probe="chat") > runs, "the exporter counting it", timeout=5, interval=0.05)

    # Of all that, the gateway's real-traffic series hold exactly the user's one chat.
    assert _real(gw, "foundry_gateway_requests_total", route="chat") == 1
    assert _real(gw, "foundry_gateway_time_to_first_token_seconds_count") == 1
    assert usage and _real(gw, "foundry_gateway_tokens_total", type="completion") \
        == usage[0]["completion_tokens"]
