"""The recorder: instruments match the declarations; labels stay bounded; no secrets."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from foundry_gateway.metrics import BY_NAME, MAX_MODELS, OTHER, UPSTREAM_ERROR_REASONS
from foundry_gateway.recorder import Recorder


def _families(rec: Recorder) -> dict:
    return {f.name: f for f in text_string_to_metric_families(rec.render().decode())}


def test_every_declared_metric_is_exposed_with_its_type() -> None:
    families = _families(Recorder())
    for name, metric in BY_NAME.items():
        if metric.type == "info":  # the text format carries an info as a <name>_info gauge
            assert families[f"{name}_info"].type == "gauge"
        else:
            assert families[name].type == metric.type, name


def test_every_upstream_reason_starts_at_zero() -> None:
    rec = Recorder()
    for reason in UPSTREAM_ERROR_REASONS:
        assert rec.registry.get_sample_value("foundry_gateway_upstream_errors_total",
                                             {"reason": reason}) == 0


def test_model_label_is_bounded_and_unknown_models_are_other() -> None:
    rec = Recorder()
    assert rec.model("made-up", known=False) == OTHER
    names = [rec.model(f"m{i}", known=True) for i in range(MAX_MODELS + 5)]
    assert names[:MAX_MODELS] == [f"m{i}" for i in range(MAX_MODELS)]
    assert set(names[MAX_MODELS:]) == {OTHER}
    assert rec.model("m0", known=False) == "m0"  # once admitted, always itself
    assert rec.model(None, known=True) == "none"


def test_user_label_keeps_the_first_n_then_other() -> None:
    rec = Recorder(max_users=2)
    assert [rec.user(u) for u in ("ann", "bob", "cy", "ann", "")] == ["ann", "bob", OTHER, "ann",
                                                                      "unknown"]


def test_tokens_and_requests_per_user() -> None:
    rec = Recorder()
    rec.request("chat", "m", 200, 0.1, user="ann")
    rec.tokens("m", 12, 3, user="ann")
    get = rec.registry.get_sample_value
    assert get("foundry_gateway_requests_total", {"route": "chat", "model": "m", "code": "200"}) == 1
    assert get("foundry_gateway_tokens_total", {"model": "m", "type": "prompt"}) == 12
    assert get("foundry_gateway_user_tokens_total",
               {"user": "ann", "model": "m", "type": "completion"}) == 3
    assert get("foundry_gateway_user_requests_total", {"user": "ann", "model": "m"}) == 1
