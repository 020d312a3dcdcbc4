"""Real traffic vs the exporter's canary: the activity report and what a canary records."""

from __future__ import annotations

from foundry_exporter.probes.activity import Activity as Parsed
from foundry_exporter.probes.activity import canary_verdict, parse_activity
from foundry_gateway.activity import Activity
from foundry_gateway.proxy import split_headers
from foundry_gateway.recorder import CanaryRecorder, Recorder


def test_nothing_seen_yet_reports_null() -> None:
    assert Activity().report(100.0, 1_700_000_000.0) == {
        "in_flight": 0, "idle_seconds": None, "last_seen_unix": None}


def test_in_flight_is_idle_zero_and_seen_now() -> None:
    a = Activity()
    a.begin(10.0)
    a.begin(11.0)
    a.end(12.0)
    assert a.report(50.0, 2000.0) == {"in_flight": 1, "idle_seconds": 0.0, "last_seen_unix": 2000.0}


def test_idle_counts_from_the_end_of_the_last_request() -> None:
    a = Activity()
    a.begin(10.0)
    a.end(12.5)
    assert a.report(20.0, 2000.0) == {"in_flight": 0, "idle_seconds": 7.5, "last_seen_unix": 1992.5}


def test_the_exporter_reads_what_the_gateway_writes() -> None:
    a = Activity()
    assert parse_activity(a.report(0.0, 0.0)) == Parsed(0, None)
    a.begin(1.0)
    assert canary_verdict(parse_activity(a.report(1.0, 1.0)), 60.0) == "real_traffic"
    a.end(2.0)
    assert canary_verdict(parse_activity(a.report(30.0, 30.0)), 60.0) == "real_traffic"
    assert canary_verdict(parse_activity(a.report(62.0, 62.0)), 60.0) is None


def _value(rec: Recorder, name: str, **labels: str) -> float:
    return rec.registry.get_sample_value(name, labels) or 0.0


def test_a_canary_records_only_its_counter_and_upstream_errors() -> None:
    rec = Recorder()
    canary = CanaryRecorder(rec)
    model = canary.model("m:1", True)
    gaps, generation = canary.stream_timing(model)
    gaps.observe(0.01)
    generation.inc(0.5)
    canary.ttft(model, 0.02)
    canary.tokens(model, 10, 8, None)
    canary.request("chat", model, 200, 0.1, None)
    canary.upstream_error("reset")
    assert _value(rec, "foundry_gateway_canary_requests_total", route="chat", code="200") == 1
    assert _value(rec, "foundry_gateway_upstream_errors_total", reason="reset") == 1
    text = rec.render().decode()
    for real in ("foundry_gateway_requests_total{", "foundry_gateway_time_to_first_token_seconds_count{",
                 "foundry_gateway_inter_token_seconds_count{", "foundry_gateway_tokens_total{",
                 "foundry_gateway_generation_seconds_total{", "foundry_gateway_request_duration_seconds_count{",
                 "foundry_gateway_user_requests_total{"):
        assert real not in text, real
    assert _value(rec, "foundry_gateway_in_flight_requests") == 0


def test_only_an_exact_mark_makes_a_canary_and_neither_mark_nor_user_is_forwarded() -> None:
    user = b"x-openwebui-user-name"
    base = [(b"content-type", b"application/json"), (b"authorization", b"Bearer k"),
            (b"user-agent", b"foundry-exporter"), (user, b"ann"), (user, b"bob")]
    forward, canary, who = split_headers([*base, (b"x-foundry-canary", b" 1 ")], user)
    assert canary is True and who == b"ann"
    assert forward == [(b"content-type", b"application/json"), (b"user-agent", b"foundry-exporter")]
    for value in (b"0", b"yes", b"", b"11"):
        assert split_headers([*base, (b"x-foundry-canary", value)], user)[1] is False
    assert split_headers(base, None) == (forward, False, b"")
