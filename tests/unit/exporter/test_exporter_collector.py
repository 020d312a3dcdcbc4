"""Folding results into the snapshot and rendering it: assert exposed sample values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from foundry_exporter import __version__
from foundry_exporter.collector import SnapshotCollector
from foundry_exporter.config import Module, Target
from foundry_exporter.metrics import FAILURE_REASONS, METRICS, all_series_names
from foundry_exporter.results import CanarySkip, ChatStats, ProbeResult
from foundry_exporter.state import Snapshot, fold, initial_state, tick

T = Target("f", "http://f:1", Module("foundry", ("models", "loaded", "chat")))
W = Target("w", "http://w:1", Module("openwebui", ("health",)))


def _registry(snapshot: Snapshot) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot))
    return registry


def _r(probe: str, ok: bool = True, reason: str | None = None, **kw) -> ProbeResult:
    return ProbeResult("f", probe, ok, kw.pop("duration", 0.02), 1700000000.0, reason, **kw)


def test_before_any_probe_counters_are_zero_and_up_is_absent() -> None:
    reg = _registry(initial_state((T, W)))
    assert reg.get_sample_value("foundry_up", {"target": "f", "kind": "foundry"}) is None
    assert reg.get_sample_value("foundry_probes_total", {"target": "f", "probe": "chat"}) == 0
    for reason in FAILURE_REASONS:
        assert reg.get_sample_value("foundry_probe_failures_total",
                                    {"target": "w", "probe": "health", "reason": reason}) == 0
    assert reg.get_sample_value("foundry_exporter_targets") == 2
    assert reg.get_sample_value("foundry_exporter_build_info", {"version": __version__}) == 1


def test_a_cycle_renders_up_listings_and_canary() -> None:
    chat = ChatStats("m:1", ttft=0.04, duration=0.5, generation=0.46, output_tokens=23)
    s = fold(initial_state((T,)), (
        _r("models", models=("m:1", "x:1", "y:1")),
        _r("loaded", models=("m:1",)),
        _r("chat", chat=chat, duration=0.5)))
    s = tick(s, 5.0, 1700000001.0)
    reg = _registry(s)
    v = reg.get_sample_value
    assert v("foundry_up", {"target": "f", "kind": "foundry"}) == 1
    assert v("foundry_models_listed", {"target": "f"}) == 3
    assert v("foundry_models_loaded", {"target": "f"}) == 1
    assert v("foundry_model_loaded", {"target": "f", "model": "m:1"}) == 1
    m = {"target": "f", "model": "m:1"}
    assert v("foundry_chat_ttft_seconds_bucket", {**m, "le": "0.025"}) == 0
    assert v("foundry_chat_ttft_seconds_bucket", {**m, "le": "0.05"}) == 1
    assert v("foundry_chat_ttft_seconds_bucket", {**m, "le": "+Inf"}) == 1
    assert v("foundry_chat_duration_seconds_sum", m) == 0.5
    assert v("foundry_chat_output_tokens_total", m) == 23
    assert v("foundry_chat_generation_seconds_total", m) == 0.46
    assert v("foundry_chat_last_ttft_seconds", m) == 0.04
    assert v("foundry_chat_last_tokens_per_second", m) == 23 / 0.46
    assert v("foundry_probe_duration_seconds_count", {"target": "f", "probe": "chat"}) == 1
    assert v("foundry_probe_last_timestamp_seconds", {"target": "f", "probe": "chat"}) == 1700000000.0
    assert v("foundry_exporter_loop_last_tick_timestamp_seconds") == 1700000001.0


def test_failures_count_by_reason_and_up_follows_the_primary_probe() -> None:
    s = initial_state((T,))
    for _ in range(2):
        s = fold(s, (_r("models", False, "timeout"), _r("loaded", models=("m:1",))))
    v = _registry(s).get_sample_value
    assert v("foundry_up", {"target": "f", "kind": "foundry"}) == 0
    assert v("foundry_probes_total", {"target": "f", "probe": "models"}) == 2
    assert v("foundry_probe_failures_total", {"target": "f", "probe": "models", "reason": "timeout"}) == 2
    assert v("foundry_probe_success", {"target": "f", "probe": "models"}) == 0
    assert v("foundry_models_listed", {"target": "f"}) is None  # no stale list after a failure


def test_unloaded_models_disappear_and_tokens_accumulate() -> None:
    c1 = ChatStats("m:1", 0.01, 0.1, 0.09, 9)
    s = fold(initial_state((T,)), (_r("loaded", models=("m:1", "n:1")), _r("chat", chat=c1)))
    s = fold(s, (_r("loaded", models=("n:1",)), _r("chat", chat=c1)))
    v = _registry(s).get_sample_value
    assert v("foundry_model_loaded", {"target": "f", "model": "m:1"}) is None
    assert v("foundry_model_loaded", {"target": "f", "model": "n:1"}) == 1
    assert v("foundry_chat_output_tokens_total", {"target": "f", "model": "m:1"}) == 18


def test_no_usage_observes_latency_but_not_tokens() -> None:
    c = ChatStats("m:1", 0.01, 0.1, 0.09, None)
    s = fold(initial_state((T,)), (_r("chat", False, "no_usage", chat=c),))
    v = _registry(s).get_sample_value
    m = {"target": "f", "model": "m:1"}
    assert v("foundry_chat_ttft_seconds_count", m) == 1
    assert v("foundry_chat_output_tokens_total", m) == 0
    assert v("foundry_chat_last_tokens_per_second", m) is None


def test_every_rendered_family_is_declared_and_every_declared_family_renders() -> None:
    c = ChatStats("m:1", 0.01, 0.1, 0.09, 9)
    s = tick(fold(initial_state((T,)), (_r("models", models=("m:1",)),
                                        _r("loaded", models=("m:1",)), _r("chat", chat=c))), 1, 1)
    s = fold(s, (_r("models", models=("m:1",)),), 2, CanarySkip("f", "real_traffic", 1.7e9))
    registry = _registry(s)
    rendered = {family.name for family in registry.collect() if family.samples}
    assert rendered == {m.name for m in METRICS}
    # ...and what Prometheus sees is exactly the catalog's series names.
    text = generate_latest(registry).decode()
    series = {line.split("{")[0].split()[0] for line in text.splitlines() if not line.startswith("#")}
    assert series == all_series_names()
