"""The "Stack health" dashboard: Open WebUI, scrapes, the exporter, Prometheus.

Answers "is the monitoring itself working?" before anyone trusts the Foundry
Local dashboard.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard

from grafana import panels as p

UID = "stack-health"

EXPORTER = 'job="foundry-exporter"'


def _services_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Services"))
        .with_panel(p.up_stat(
            "Open WebUI", "The exporter's last /health probe of Open WebUI.",
            'foundry_up{kind="openwebui"}', "{{target}}", no_value="Not probed"))
        .with_panel(p.value_stat(
            "Open WebUI availability 24h", "Share of /health probes that succeeded.",
            'min(target_kind:foundry_up:avg_over_time1d{kind="openwebui"})', "percentunit",
            p.steps((None, "red"), (0.95, "orange"), (0.99, "green"))))
        .with_panel(p.up_stat(
            "Exporter scrape", "Prometheus' last scrape of the exporter.",
            f"up{{{EXPORTER}}}", "{{instance}}", no_value="Not scraped"))
        .with_panel(p.up_stat(
            "Prometheus scrape", "Prometheus' last scrape of itself.",
            'up{job="prometheus"}', "{{instance}}", no_value="Not scraped"))
        .with_panel(p.value_stat(
            "Probe loop lag", "Seconds since the exporter's probe loop last ran.",
            "time() - foundry_exporter_loop_last_tick_timestamp_seconds", "s",
            p.steps((None, "green"), (60, "orange"), (120, "red"))))
        .with_panel(p.value_stat(
            "Firing alerts", "Alerts firing in Prometheus (no Alertmanager in this stack).",
            'count(ALERTS{alertstate="firing"}) or vector(0)', "none", p.GREEN_RED))
    )


def _exporter_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Exporter"))
        .with_panel(p.value_stat(
            "Exporter version", "From foundry_exporter_build_info.",
            "foundry_exporter_build_info", "none", p.steps((None, "blue")))
            .reduce_options(common_builder.ReduceDataOptions()
                            .calcs(["lastNotNull"]).values(False).fields("/^version$/"))
            .span(6))
        .with_panel(p.value_stat(
            "Targets configured", "Targets in the exporter's config.",
            "foundry_exporter_targets", "none", p.steps((None, "blue"))).span(6))
        .with_panel(p.graph(
            "Probes per second", "Probes run, by target and kind.", "ops",
            [p.query("sum by (target, probe) (rate(foundry_probes_total[$__rate_interval]))",
                     "{{target}} {{probe}}")]))
        .with_panel(p.graph(
            "Exporter memory", "Resident memory of the exporter process.", "bytes",
            [p.query(f"process_resident_memory_bytes{{{EXPORTER}}}", "{{instance}}")], width=6))
        .with_panel(p.graph(
            "Exporter CPU", "CPU seconds per second used by the exporter process.", "percentunit",
            [p.query(f"rate(process_cpu_seconds_total{{{EXPORTER}}}[$__rate_interval])",
                     "{{instance}}")], width=6))
    )


def _scrapes_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Scrapes and Prometheus"))
        .with_panel(p.graph(
            "Scrape health", "1 = last scrape succeeded, by job.", "none",
            [p.query("up", "{{job}} {{instance}}")], width=8)
            .mappings(p.UP_MAPPINGS))
        .with_panel(p.graph(
            "Scrape duration", "Seconds per scrape; the exporter serves cached results.", "s",
            [p.query("scrape_duration_seconds", "{{job}}")], width=8))
        .with_panel(p.graph(
            "Samples per scrape", "Samples each scrape returned.", "none",
            [p.query("scrape_samples_scraped", "{{job}}")], width=8))
        .with_panel(p.graph(
            "Rule evaluation failures", "Recording/alerting rule evaluations that failed.",
            "ops", [p.query(
                "sum by (rule_group) "
                "(rate(prometheus_rule_evaluation_failures_total[$__rate_interval]))",
                "{{rule_group}}")]))
        .with_panel(p.graph(
            "Head series", "Series in Prometheus' in-memory head block.", "none",
            [p.query("prometheus_tsdb_head_series", "{{instance}}")]))
    )


def build() -> dashboard.Dashboard:
    b = (
        p.base_dashboard("Stack health", UID, "Open WebUI, scrape health, the exporter and Prometheus itself.")
    )
    for add in (_services_row, _exporter_row, _scrapes_row):
        b = add(b)
    return b
