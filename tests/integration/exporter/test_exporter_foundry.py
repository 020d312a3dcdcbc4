"""The exporter against the real Foundry Local runtime serving the tiny model."""

from __future__ import annotations

import pytest

from tests.integration.exporter.conftest import probe_once


@pytest.fixture(scope="module")
def probed(foundry_server):
    # Local (BYOM) models are served under /catalogs/local of the service root.
    return probe_once(f"{foundry_server.root_url}/catalogs/local", timeout=10.0)


def test_foundry_is_up_with_the_tiny_model_listed_and_loaded(probed, foundry_server) -> None:
    model = foundry_server.model_id
    assert {p: (r.reason, r.detail) for p, r in probed.results.items()} == dict.fromkeys(
        ("models", "loaded", "chat"), (None, ""))
    assert probed.sample("foundry_up", target="t", kind="foundry") == 1.0
    assert model in probed.results["models"].models
    assert probed.sample("foundry_model_loaded", target="t", model=model) == 1.0
    assert probed.sample("foundry_models_loaded", target="t") >= 1
    assert probed.leaked_tasks == []


def test_canary_records_ttft_duration_and_tokens(probed, foundry_server) -> None:
    labels = {"target": "t", "model": foundry_server.model_id}
    ttft = probed.sample("foundry_chat_last_ttft_seconds", **labels)
    duration = probed.sample("foundry_chat_duration_seconds_sum", **labels)
    tokens = probed.sample("foundry_chat_output_tokens_total", **labels)
    assert 0 < ttft <= duration < 10
    assert 1 <= tokens <= 8  # max_tokens of the canary
    assert probed.sample("foundry_chat_generation_seconds_total", **labels) > 0
    assert probed.sample("foundry_chat_last_tokens_per_second", **labels) > 0


def test_root_prefix_of_the_same_server_has_no_local_model_to_chat_with(foundry_server) -> None:
    probed = probe_once(foundry_server.root_url, timeout=10.0, probes=("loaded", "chat"))
    # The root serves the public catalog only: nothing loaded there, so no canary.
    assert (probed.results["loaded"].ok, probed.results["loaded"].models) == (True, ())
    assert probed.results["chat"].reason == "no_chat_model"
