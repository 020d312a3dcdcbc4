"""Every PromQL expression in rules and dashboards parses and names only known series.

Known series: the exporter's and the gateway's declared metrics
(foundry_exporter.metrics, foundry_gateway.metrics), the recording rules, and
an explicit list of Prometheus' own and client-library series the Stack health
dashboard uses.
"""

from __future__ import annotations

import re

import promql_parser
import pytest

from foundry_exporter import metrics
from foundry_gateway import metrics as gateway_metrics
from tests.unit.observability import promql_sources as src

# Series not declared by the exporter catalog, each used on purpose.
PROMETHEUS_SERIES = frozenset({
    "up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS",  # synthetic
    "prometheus_rule_evaluation_failures_total", "prometheus_tsdb_head_series",  # self-scrape
})
CLIENT_LIBRARY_SERIES = frozenset({  # prometheus_client's process collector
    "process_resident_memory_bytes", "process_cpu_seconds_total",
})

EXPRESSIONS = src.all_expressions()
IDS = [e.source for e in EXPRESSIONS]

# level:metric:operations; level and operations are snake case.
RECORDING_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")

REQUIRED_ALERTS = {
    "FoundryLocalDown", "FoundryNoChatModelLoaded", "FoundryExporterDown",
    "FoundryExporterLoopStalled", "FoundryProbeStale", "FoundryTTFTHigh",
    "FoundryChatLatencyHigh", "FoundryProbeErrorRatioHigh", "OpenWebUIDown",
    "FoundryGatewayErrorRatioHigh", "FoundryGatewayTTFTHigh", "FoundryGatewayScrapeDown",
    "FoundryUpstreamDown", "FoundryAllUpstreamsDown", "FoundryCloudUpstreamDown",
}
# Every metric a program of the stack declares, each with its catalog.
DECLARED = (*metrics.METRICS, *gateway_metrics.METRICS)


def known_series() -> frozenset[str]:
    return (
        metrics.all_series_names()
        | gateway_metrics.all_series_names()
        | src.recording_rule_names()
        | PROMETHEUS_SERIES
        | CLIENT_LIBRARY_SERIES
    )


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=IDS)
def test_expression_parses(expression: src.Expression) -> None:
    promql_parser.parse(expression.promql)


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=IDS)
def test_expression_names_only_known_series(expression: src.Expression) -> None:
    names = src.series_names(expression.promql)
    assert names, f"{expression.source}: selects no series: {expression.raw}"
    unknown = names - known_series()
    assert not unknown, f"{expression.source}: unknown series {sorted(unknown)} in {expression.raw}"


def test_every_declared_metric_is_shown_or_alerted_on() -> None:
    used = set().union(*(src.series_names(e.promql) for e in EXPRESSIONS))
    unused = [m.name for m in DECLARED if not used & set(m.series_names)]
    assert not unused, f"declared but on no dashboard or rule: {unused}"


def test_every_extra_series_is_actually_used() -> None:
    used = set().union(*(src.series_names(e.promql) for e in EXPRESSIONS))
    stale = (PROMETHEUS_SERIES | CLIENT_LIBRARY_SERIES) - used
    assert not stale, f"allow-listed but unused, drop them: {sorted(stale)}"


def test_recording_rule_names_follow_level_metric_operations() -> None:
    bad = sorted(n for n in src.recording_rule_names() if not RECORDING_NAME.match(n))
    assert not bad, f"not level:metric:operations: {bad}"


def test_declared_metric_names_have_no_colons() -> None:
    assert not [n for m in DECLARED for n in m.series_names if ":" in n]


def test_the_required_alerts_exist() -> None:
    assert {a["alert"] for a in src.alerts()} == REQUIRED_ALERTS


@pytest.mark.parametrize("alert", src.alerts(), ids=lambda a: a["alert"])
def test_alert_has_summary_description_runbook_and_severity(alert: dict) -> None:
    annotations = alert.get("annotations", {})
    missing = {"summary", "description", "runbook"} - annotations.keys()
    assert not missing, f"{alert['alert']}: missing annotations {sorted(missing)}"
    assert "`./stack " in annotations["runbook"], f"{alert['alert']}: runbook names no command"
    assert annotations["runbook"].startswith("README.md#"), alert["alert"]
    assert alert["labels"]["severity"] in {"critical", "warning"}


def test_unknown_template_variable_is_an_error() -> None:
    with pytest.raises(KeyError, match=r"\$nope"):
        src.substitute('foundry_up{target=~"$nope"}', {}, "here")


def test_macros_substitute_to_parseable_promql() -> None:
    text = src.substitute("rate(foundry_probes_total[$__rate_interval])", {}, "here")
    assert text == "rate(foundry_probes_total[60s])"
