"""Every metric the gateway exposes, declared once.

The recorder builds its instruments from this table, the README's reference is
generated from it (``python -m foundry_gateway.docs``), and dashboards, rules
and tests read it. Declarations use the exporter's ``Metric`` (same naming
rules: base units, ``_total`` only on counters, closed ``reason`` set).

Label values are bounded: ``route`` and ``reason`` are closed sets below;
``model`` is a model the upstream served or listed (else ``other``, capped at
``MAX_MODELS``); ``user`` is opt-in and capped (the first ``max_users`` names
seen, then ``other``); ``upstream`` and ``kind`` are the configured upstreams'
names and kinds (``local`` | ``cloud``). Prompts and keys never become labels.
"""

from __future__ import annotations

from foundry_exporter.metrics import LATENCY_BUCKETS, Metric

PREFIX = "foundry_gateway"

# Time to first token and request duration: the exporter's LLM-sized buckets
# (a tiny model answers in milliseconds, a 7B model on a laptop CPU in tens of
# seconds), with two finer ones for fast local models.
DURATION_BUCKETS: tuple[float, ...] = (0.001, 0.0025, *LATENCY_BUCKETS)
# Gaps between tokens: sub-millisecond (tiny model) to seconds (swapping laptop).
INTER_TOKEN_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)

# Label ``route``: which allowed door a request came through (``refused``: any other).
ROUTES: tuple[str, ...] = ("chat", "embeddings", "models", "model", "loaded", "refused")

# Label ``reason`` of upstream_errors_total (closed set).
UPSTREAM_ERROR_REASONS: tuple[str, ...] = (
    "connect",          # refused, unreachable, DNS
    "connect_timeout",  # no TCP connection within timeouts.connect
    "header_timeout",   # no response headers within timeouts.first_byte
    "idle_timeout",     # no bytes for timeouts.idle in the middle of a response
    "total_timeout",    # response still running after timeouts.total (endless stream)
    "reset",            # connection closed or reset before the response was complete
    "protocol",         # not valid HTTP/1.1
    "invalid_sse",      # an event on a chat stream that is not a chunk object (relayed as is)
    "redirect",         # a 3xx: the gateway never follows or forwards redirects
    "too_large",        # response over limits.max_response_bytes
    "http_5xx",         # the upstream answered 5xx (relayed as is)
)

# Label ``type`` of tokens_total.
TOKEN_TYPES: tuple[str, ...] = ("prompt", "completion")

OTHER = "other"    # the overflow value of the model and user labels
NONE = "none"      # model label when the request named no model
UNKNOWN_USER = "unknown"
MAX_MODELS = 64
MAX_LABEL_CHARS = 128

METRICS: tuple[Metric, ...] = (
    Metric(f"{PREFIX}_requests", "counter",
           "Requests answered, by route, model and HTTP status (mid-stream failures count "
           "as the 502/504 they would have been).", ("route", "model", "code")),
    Metric(f"{PREFIX}_request_duration_seconds", "histogram",
           "Request received to last byte sent to the client.", ("route", "model")),
    Metric(f"{PREFIX}_time_to_first_token_seconds", "histogram",
           "Streamed chats: request received to the first chunk carrying content sent on.",
           ("model",)),
    Metric(f"{PREFIX}_inter_token_seconds", "histogram",
           "Streamed chats: gap between successive content chunks (a read carrying n chunks "
           "counts n gaps of 1/n of the time since the previous one).", ("model",)),
    Metric(f"{PREFIX}_generation_seconds", "counter",
           "Streamed chats: first content chunk to end of stream; tokens/s = "
           "rate(tokens_total{type=\"completion\"}) / rate(generation_seconds).", ("model",)),
    Metric(f"{PREFIX}_tokens", "counter",
           "Tokens from the upstream's usage block, by model and type (prompt, completion).",
           ("model", "type")),
    Metric(f"{PREFIX}_in_flight_requests", "gauge",
           "Requests being proxied right now (chat and embeddings, canary excluded).", ()),
    Metric(f"{PREFIX}_upstream_errors", "counter",
           "Upstream failures by closed-set reason.", ("reason",)),
    Metric(f"{PREFIX}_upstream_moves", "counter",
           "Times the gateway found its upstream on a new port after it refused connections "
           "(upstreams with follow: true; see \"An upstream that moved\").", ()),
    Metric(f"{PREFIX}_canary_requests", "counter",
           "Requests marked as the exporter's canary (X-Foundry-Canary: 1), by route and HTTP "
           "status: relayed, but counted only here, never in the real-traffic series "
           "(requests, durations, TTFT, tokens, users, in-flight).", ("route", "code")),
    Metric(f"{PREFIX}_user_requests", "counter",
           "Chat and embedding requests per user (opt-in: per_user.enabled; from Open WebUI's "
           "forwarded user header; the first per_user.max_users users, then other).",
           ("user", "model")),
    Metric(f"{PREFIX}_user_tokens", "counter",
           "Tokens per user, model and type (opt-in, bounded like user_requests).",
           ("user", "model", "type")),
    Metric(f"{PREFIX}_upstream_up", "gauge",
           "1 while the upstream is in rotation, 0 while it is out (failing; probed back in). "
           "With one upstream it is always 1: nothing to route around.", ("upstream", "kind")),
    Metric(f"{PREFIX}_upstream_models", "gauge",
           "Chat models the upstream can serve now (local: loaded, from its last listing; "
           "cloud: the configured list).", ("upstream",)),
    Metric(f"{PREFIX}_upstream_in_flight_requests", "gauge",
           "Requests sent to the upstream and not finished (canary excluded).", ("upstream",)),
    Metric(f"{PREFIX}_upstream_requests", "counter",
           "Chat and embedding requests answered by each upstream, by its kind and the HTTP "
           "status (canary excluded): local vs cloud share.", ("upstream", "kind", "code")),
    Metric(f"{PREFIX}_upstream_wait_seconds", "histogram",
           "Request sent to the upstream's response head: on Foundry Local, which answers one "
           "request at a time, mostly the time spent queued behind others.", ("upstream",)),
    Metric(f"{PREFIX}_upstream_time_to_first_token_seconds", "histogram",
           "Streamed chats: request received to first content chunk, by the upstream that "
           "served it.", ("upstream",)),
    Metric(f"{PREFIX}_upstream_failures", "counter",
           "Failures per upstream by the reasons of upstream_errors_total (every failure, "
           "retried or not).", ("upstream", "reason")),
    Metric(f"{PREFIX}_upstream_retries", "counter",
           "Requests this upstream failed before the first byte of its answer and that were "
           "sent to the next candidate.", ("upstream",)),
    Metric(f"{PREFIX}_build", "info", "Gateway version.", ("version",)),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def metric(suffix: str) -> Metric:
    """The declaration of ``foundry_gateway_<suffix>`` (KeyError when undeclared)."""
    return BY_NAME[f"{PREFIX}_{suffix}"]


def all_series_names() -> frozenset[str]:
    """Every series name PromQL may reference (plus the process_* client metrics)."""
    return frozenset(n for m in METRICS for n in m.series_names)
