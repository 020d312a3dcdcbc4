"""The "Foundry Local" dashboard: is it up, what is loaded, how fast it answers.

Chat panels follow the exporter's chat canary (one small streamed completion per
interval), so they show the server's speed, not users' traffic.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import common

from grafana import panels as p

UID = "foundry-local"

T = 'target=~"$target"'
TM = 'target=~"$target", model=~"$model"'
FOUNDRY = f'kind="foundry", {T}'


def _status_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Status"))
        .with_panel(p.up_stat(
            "Foundry Local", "Last probe of each Foundry Local target.",
            f"foundry_up{{{FOUNDRY}}}", "{{target}}", no_value="No data: is the exporter up?"))
        .with_panel(p.value_stat(
            "Unreachable", "Foundry Local targets whose last probe failed.",
            f"count(foundry_up{{{FOUNDRY}}} == 0) or vector(0)", "none", p.GREEN_RED)
            .mappings(p.text_for("0", "None", "green")))
        .with_panel(p.value_stat(
            "Availability 1h", "Share of probes that found the target up, last hour.",
            f"min(target_kind:foundry_up:avg_over_time1h{{{FOUNDRY}}})", "percentunit",
            p.steps((None, "red"), (0.95, "orange"), (0.99, "green"))))
        .with_panel(p.value_stat(
            "Availability 24h", "Share of probes that found the target up, last 24 hours.",
            f"min(target_kind:foundry_up:avg_over_time1d{{{FOUNDRY}}})", "percentunit",
            p.steps((None, "red"), (0.95, "orange"), (0.99, "green"))))
        .with_panel(p.traffic_stat(
            "TTFT p90", "Time to first token of the chat canary, 90th percentile.",
            "histogram_quantile(0.9, sum by (le) "
            f"(rate(foundry_chat_ttft_seconds_bucket{{{TM}}}[$__rate_interval])))", "s"))
        .with_panel(p.traffic_stat(
            "Tokens/s", "Output tokens per second of generation (ratio of two counters).",
            f"sum(rate(foundry_chat_output_tokens_total{{{TM}}}[$__rate_interval])) / "
            f"sum(rate(foundry_chat_generation_seconds_total{{{TM}}}[$__rate_interval]))",
            "none"))
    )


def _models_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Models"))
        .with_panel(p.table_panel(
            "Loaded models", "Models loaded on each target, with the last chat canary's speed.",
            [
                p.table_query(f"max by (target, model) (foundry_model_loaded{{{T}}})", "A"),
                p.table_query(f"max by (target, model) (foundry_chat_last_ttft_seconds{{{T}}})", "B"),
                p.table_query(
                    f"max by (target, model) (foundry_chat_last_tokens_per_second{{{T}}})", "C"),
            ],
            renames={"Value #B": "Last TTFT (s)", "Value #C": "Last tokens/s"},
            hidden=["Time", "Value #A"], width=12))
        .with_panel(p.value_stat(
            "Models loaded", "Chat models loaded, per target.",
            f"foundry_models_loaded{{{T}}}", "none", p.RED_GREEN, legend="{{target}}")
            .mappings(p.text_for("0", "None loaded", "red"))
            .height(8).span(6))
        .with_panel(p.value_stat(
            "Models listed", "Models in GET /v1/models; SDK 2.x lists its whole catalog.",
            f"foundry_models_listed{{{T}}}", "none", p.steps((None, "blue")),
            legend="{{target}}").height(8).span(6))
    )


def _latency_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Latency and throughput"))
        .with_panel(p.graph(
            "Model list latency", "Duration of GET /v1/models probes.", "s",
            p.quantile_queries("foundry_probe_duration_seconds", f'probe="models", {T}',
                               "target", "{{target}}")))
        .with_panel(p.graph(
            "Chat latency", "Chat canary: request sent to end of stream.", "s",
            p.quantile_queries("foundry_chat_duration_seconds", TM, "target, model",
                               "{{model}}")))
        .with_panel(p.graph(
            "Time to first token", "Chat canary: request sent to first chunk with content.",
            "s", p.quantile_queries("foundry_chat_ttft_seconds", TM, "target, model",
                                    "{{model}}")))
        .with_panel(p.graph(
            "Tokens per second", "Output tokens / generation seconds; gaps mean no canary ran.",
            "none", [p.query(
                f"sum by (target, model) (rate(foundry_chat_output_tokens_total{{{TM}}}"
                "[$__rate_interval])) / sum by (target, model) "
                f"(rate(foundry_chat_generation_seconds_total{{{TM}}}[$__rate_interval]))",
                "{{model}}")]))
    )


def _failures_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Failures and freshness"))
        .with_panel(p.graph(
            "Failures by reason", "Failed probes per interval, by probe and closed-set reason.",
            "none", [p.query(
                "sum by (target, probe, reason) "
                f"(increase(foundry_probe_failures_total{{{T}}}[$__rate_interval]))",
                "{{target}} {{probe}}: {{reason}}")])
            .draw_style(common.GraphDrawStyle.BARS))
        .with_panel(p.graph(
            "Probe error ratio (5m)", "Failed / all probes over 5 minutes, by probe kind.",
            "percentunit", [p.query(
                f"target_probe:foundry_probe_failures_per_probes:ratio_rate5m{{{T}}}",
                "{{target}} {{probe}}")]))
        .with_panel(p.graph(
            "Probe staleness", "Seconds since each probe last finished (values are cached), "
            "and since the chat canary last yielded to a user's chat: an old chat probe "
            "with a recent yield is a canary giving way, not a stuck one.",
            "s", [p.query(f"time() - foundry_probe_last_timestamp_seconds{{{T}}}",
                          "{{target}} {{probe}}"),
                  p.query(f"time() - foundry_canary_last_skip_timestamp_seconds{{{T}}}",
                          "{{target}} canary last yielded", ref_id="B")]))
        .with_panel(p.up_stat(
            "Probe status", "Did the last probe of each kind succeed?",
            f"max by (target, probe) (foundry_probe_success{{{T}}})", "{{target}} {{probe}}",
            no_value="No probes yet")
            .mappings(p.text_for("1", "OK", "green") + p.text_for("0", "Failing", "red"))
            .height(8).span(12))
        .with_panel(p.graph(
            "Last probe duration", "Duration of the most recent probe of each kind.", "s",
            [p.query(f"foundry_probe_last_duration_seconds{{{T}}}", "{{target}} {{probe}}")]))
        .with_panel(p.graph(
            "Canary rounds skipped", "Due chat canary rounds skipped, by reason (real_traffic: "
            "a user chatted through the gateway since the previous round; on a single local "
            "model the canary never competes with a user). Chat panels keep the last values.",
            "none", [p.query(
                "sum by (target, reason) "
                f"(increase(foundry_canary_skipped_total{{{T}}}[$__rate_interval]))",
                "{{target}}: {{reason}}")])
            .draw_style(common.GraphDrawStyle.BARS))
    )


def build() -> dashboard.Dashboard:
    b = (
        p.base_dashboard("Foundry Local", UID, "Is Foundry Local up, which models are loaded, how fast it answers.")
        .with_variable(p.query_variable(
            "target", "Target", 'foundry_up{kind="foundry"}', "target"))
        .with_variable(p.query_variable(
            "model", "Model", f"foundry_chat_ttft_seconds_count{{{T}}}", "model"))
    )
    for add in (_status_row, _models_row, _latency_row, _failures_row):
        b = add(b)
    return b
