"""The "Chats" dashboard: what users' real chats get, measured by the gateway.

Every panel reads the gateway's own metrics (foundry_gateway.metrics), so it
shows real traffic through the one door to Foundry Local, not the exporter's
canary. Panels are empty ("No traffic") while nobody chats. The per-user row
stays empty unless the gateway's per_user counting is enabled. The Upstreams row
(and its $host variable) shows each upstream the gateway routes to; the default
stack has one, "foundry", always in rotation.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import common

from foundry_gateway.metrics import metric
from grafana import panels as p

UID = "chats"

M = 'model=~"$model"'
# The routes that reach a model (chat and embeddings); the model list, the
# loaded-model listing and refused requests have their own panel.
SERVED = f'route=~"chat|embeddings", {M}'
ERRORS = f'route=~"chat|embeddings", code=~"5..", {M}'
TTFT = "foundry_gateway_time_to_first_token_seconds"
QUANTILES = (0.5, 0.95)

H = 'upstream=~"$host"'
# The per-upstream families, named by the gateway's catalog (a rename there
# breaks this build, not a panel).
UPSTREAM_UP = metric("upstream_up").name
UPSTREAM_MODELS = metric("upstream_models").name
UPSTREAM_IN_FLIGHT = metric("upstream_in_flight_requests").name
UPSTREAM_REQUESTS = metric("upstream_requests").series_names[0]
UPSTREAM_WAIT = metric("upstream_wait_seconds").name
UPSTREAM_TTFT = metric("upstream_time_to_first_token_seconds").name
UPSTREAM_FAILURES = metric("upstream_failures").series_names[0]
UPSTREAM_RETRIES = metric("upstream_retries").series_names[0]


def _rate(series: str, selector: str, by: str = "") -> str:
    rate = f"rate({series}{{{selector}}}[$__rate_interval])"
    return f"sum by ({by}) ({rate})" if by else f"sum({rate})"


def error_ratio(by: str = "") -> str:
    """5xx / all served requests; a model that never failed gets 0, not no series."""
    requests = "foundry_gateway_requests_total"
    return (f"({_rate(requests, ERRORS, by)} or 0 * {_rate(requests, SERVED, by)}) / "
            f"{_rate(requests, SERVED, by)}")


def tokens_per_second(by: str = "") -> str:
    """Completion tokens / generation seconds: a ratio of two counters."""
    completion = _rate("foundry_gateway_tokens_total", f'type="completion", {M}', by)
    return f"{completion} / {_rate('foundry_gateway_generation_seconds_total', M, by)}"


def _ttft(q: float) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({TTFT}_bucket{{{M}}}[$__rate_interval])))"


def _status_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Now"))
        .with_panel(p.up_stat(
            "Gateway", "Prometheus' last scrape of the gateway's /metrics (needs its key).",
            'up{job="gateway"}', "{{instance}}", no_value="Not scraped").span(3))
        .with_panel(p.value_stat(
            "Gateway version", "Version of the gateway answering.",
            "foundry_gateway_build_info", "none", p.steps((None, "blue")), legend="{{version}}")
            .text_mode(common.BigValueTextMode.NAME).span(3))
        .with_panel(p.traffic_stat(
            "TTFT p50", "Real chats: request received to first content chunk, median.",
            _ttft(0.5), "s").span(3))
        .with_panel(p.traffic_stat(
            "TTFT p95", "Real chats: request received to first content chunk, 95th percentile.",
            _ttft(0.95), "s").span(3))
        .with_panel(p.traffic_stat(
            "Tokens/s", "Completion tokens per second of generation, all models.",
            tokens_per_second(), "none").span(3))
        .with_panel(p.traffic_stat(
            "Error ratio", "Chat and embedding requests answered 5xx / all of them.",
            error_ratio(), "percentunit").span(3))
        .with_panel(p.value_stat(
            "In flight", "Requests being proxied right now (Foundry Local queues them).",
            "sum(foundry_gateway_in_flight_requests)", "none",
            p.steps((None, "green"), (4, "orange"))).span(3))
        .with_panel(p.value_stat(
            "Chats in range", "Chat requests in the dashboard's time range.",
            f'sum(increase(foundry_gateway_requests_total{{route="chat", {M}}}[$__range]))',
            "none", p.steps((None, "blue"))).no_value("No chats").span(3))
    )


def _speed_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Latency and speed per model"))
        .with_panel(p.graph(
            "Time to first token", "Real streamed chats, per model.", "s",
            p.quantile_queries(TTFT, M, "model", "{{model}}", QUANTILES)))
        .with_panel(p.graph(
            "Tokens per second", "Completion tokens / generation seconds, per model.", "none",
            [p.query(tokens_per_second("model"), "{{model}}")]))
        .with_panel(p.graph(
            "Inter-token latency", "Gap between content chunks of streamed chats.", "s",
            p.quantile_queries("foundry_gateway_inter_token_seconds", M, "model", "{{model}}",
                               QUANTILES)))
        .with_panel(p.graph(
            "Request duration", "Request received to last byte sent, chats and embeddings.", "s",
            p.quantile_queries("foundry_gateway_request_duration_seconds", SERVED, "model",
                               "{{model}}", QUANTILES)))
    )


def _requests_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Requests and errors"))
        .with_panel(p.graph(
            "Requests per model", "Chat and embedding requests per second, by HTTP status.",
            "reqps", [p.query(_rate("foundry_gateway_requests_total", SERVED, "model, code"),
                              "{{model}} {{code}}")]))
        .with_panel(p.graph(
            "Error ratio per model", "5xx answers / all chat and embedding requests.",
            "percentunit", [p.query(error_ratio("model"), "{{model}}")]))
        .with_panel(p.graph(
            "Upstream errors by reason", "Upstream failures per interval, closed-set reason; "
            "'moved': Foundry Local re-found on a new port (a user's Foundry restarted).",
            "none", [p.query(
                "sum by (reason) (increase(foundry_gateway_upstream_errors_total"
                "[$__rate_interval]))", "{{reason}}"),
                p.query("sum(increase(foundry_gateway_upstream_moves_total[$__rate_interval]))",
                        "moved", ref_id="B")])
            .draw_style(common.GraphDrawStyle.BARS))
        .with_panel(p.graph(
            "All doors", "Every request by route and status: refused paths and missing "
            "keys (401) show here.", "reqps",
            [p.query('sum by (route, code) (rate(foundry_gateway_requests_total'
                     '[$__rate_interval]))', "{{route}} {{code}}")]))
        .with_panel(p.graph(
            "In-flight requests", "Requests being proxied; more than one means queueing.",
            "none", [p.query("sum(foundry_gateway_in_flight_requests)", "in flight")]))
        .with_panel(p.graph(
            "Exporter canary", "The exporter's canary through the gateway, by route and "
            "status: relayed, never counted in the real-traffic panels here.", "reqps",
            [p.query("sum by (route, code) (rate(foundry_gateway_canary_requests_total"
                     "[$__rate_interval]))", "{{route}} {{code}}")]))
    )


def _tokens_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Tokens per model"))
        .with_panel(p.graph(
            "Tokens per second by type", "Prompt and completion tokens from usage.", "none",
            [p.query(_rate("foundry_gateway_tokens_total", M, "model, type"),
                     "{{model}} {{type}}")]))
        .with_panel(p.table_panel(
            "Tokens in range", "Tokens per model in the dashboard's time range.",
            [p.table_query(f'sum by (model) (increase(foundry_gateway_tokens_total'
                           f'{{type="{t}", {M}}}[$__range]))', ref)
             for t, ref in (("prompt", "A"), ("completion", "B"))],
            renames={"Value #A": "Prompt tokens", "Value #B": "Completion tokens"},
            hidden=["Time"]))
    )


def _users_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    u = "foundry_gateway_user_requests_total"
    return (
        b.with_row(p.row("Per user (empty unless the gateway's per_user counting is enabled)"))
        .with_panel(p.graph(
            "Requests per user", "From Open WebUI's forwarded user header; the first "
            "per_user.max_users users, then other.", "reqps",
            [p.query(_rate(u, M, "user"), "{{user}}")]))
        .with_panel(p.graph(
            "Tokens per user", "Prompt and completion tokens per second, per user.", "none",
            [p.query(_rate("foundry_gateway_user_tokens_total", M, "user, type"),
                     "{{user}} {{type}}")]))
        .with_panel(p.table_panel(
            "Usage per user in range", "Requests and tokens per user and model in the "
            "dashboard's time range.",
            [p.table_query(f"sum by (user, model) (increase({u}{{{M}}}[$__range]))", "A"),
             *[p.table_query(f'sum by (user, model) (increase(foundry_gateway_user_tokens_total'
                             f'{{type="{t}", {M}}}[$__range]))', ref)
               for t, ref in (("prompt", "B"), ("completion", "C"))]],
            renames={"Value #A": "Requests", "Value #B": "Prompt tokens",
                     "Value #C": "Completion tokens"},
            hidden=["Time"], width=24))
    )


def local_vs_cloud_share() -> str:
    """Each kind's share of the requests the upstreams answered (canary excluded)."""
    return (f"{_rate(UPSTREAM_REQUESTS, H, 'kind')} / ignoring (kind) group_left "
            f"{_rate(UPSTREAM_REQUESTS, H)}")


def _upstreams_row(b: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        b.with_row(p.row("Upstreams (hosts)"))
        .with_panel(p.up_stat(
            "In rotation", "Each upstream the gateway routes to: out of rotation after "
            "failing, probed back in by the gateway. One upstream is always in.",
            f"{UPSTREAM_UP}{{{H}}}", "{{upstream}} ({{kind}})", no_value="No upstreams",
            mappings=p.ROTATION_MAPPINGS).span(12))
        .with_panel(p.value_stat(
            "Chat models", "Chat models each upstream can serve now (local: loaded; "
            "cloud: the configured list).", f"{UPSTREAM_MODELS}{{{H}}}", "none",
            p.steps((None, "red"), (1, "blue")), legend="{{upstream}}").span(12))
        .with_panel(p.graph(
            "Local vs cloud share", "Share of chat and embedding requests answered by "
            "local and by cloud upstreams.", "percentunit",
            [p.query(local_vs_cloud_share(), "{{kind}}")])
            .stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL)))
        .with_panel(p.graph(
            "In-flight per upstream", "Requests sent to each upstream and not finished; "
            "Foundry Local answers one at a time, so more than one is a queue.", "none",
            [p.query(f"sum by (upstream) ({UPSTREAM_IN_FLIGHT}{{{H}}})", "{{upstream}}")]))
        .with_panel(p.graph(
            "Queue wait p95 per upstream", "Request sent to the upstream's response head: "
            "on Foundry Local mostly the wait behind other requests.", "s",
            p.quantile_queries(UPSTREAM_WAIT, H, "upstream", "{{upstream}}", (0.95,))))
        .with_panel(p.graph(
            "Time to first token p95 per upstream", "Real streamed chats, by the upstream "
            "that served them.", "s",
            p.quantile_queries(UPSTREAM_TTFT, H, "upstream", "{{upstream}}", (0.95,))))
        .with_panel(p.graph(
            "Failures per upstream by reason", "Failures per second of each upstream, closed-set "
            "reason (every failure, retried or not).", "reqps",
            [p.query(_rate(UPSTREAM_FAILURES, H, "upstream, reason"),
                     "{{upstream}} {{reason}}")]))
        .with_panel(p.graph(
            "Retries per upstream", "Requests an upstream failed before the first byte of "
            "its answer, re-sent to the next candidate.", "reqps",
            [p.query(_rate(UPSTREAM_RETRIES, H, "upstream"), "{{upstream}}")]))
    )


def build() -> dashboard.Dashboard:
    b = (
        p.base_dashboard("Chats", UID, "Real chats through the gateway: time to first token, "
                         "tokens/s, errors and tokens per model and per user.")
        .with_variable(p.query_variable(
            "model", "Model", 'foundry_gateway_requests_total{route=~"chat|embeddings"}',
            "model"))
        .with_variable(p.query_variable("host", "Host", UPSTREAM_UP, "upstream"))
    )
    for add in (_status_row, _speed_row, _requests_row, _upstreams_row, _tokens_row,
                _users_row):
        b = add(b)
    return b
