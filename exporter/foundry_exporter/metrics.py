"""Every metric the exporter exposes, declared once.

Dashboards, alert/recording rules and tests read this table; a test fails when
any of them names a metric that is not here. Conventions (Prometheus docs,
"Metric and label naming"): base units, ``_total`` only on counters, no colons,
failures as one counter with a closed ``reason`` set, bounded labels only
(target and model names come from the config / the server's loaded list, never
from prompts or users).
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "foundry"

# LLM-sized buckets: a tiny model answers in milliseconds, a 7B model on a
# laptop CPU in tens of seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
)

# The closed set of probe failure reasons (label ``reason``).
FAILURE_REASONS: tuple[str, ...] = (
    "connection",        # refused, reset, DNS, TLS
    "timeout",           # no answer within the probe's budget
    "http_4xx",          # any other 4xx
    "http_5xx",          # any 5xx
    "unauthorized",      # 401/403: wrong or missing API key
    "not_found",         # 404: wrong URL prefix or unknown model
    "model_not_loaded",  # 400 "not loaded" from Foundry Local
    "invalid_response",  # not JSON / wrong shape / HTML
    "stream_cut",        # SSE ended without [DONE] or finish_reason
    "no_usage",          # stream finished but carried no usage block
    "too_large",         # body over the exporter's size limit
    "no_chat_model",     # nothing loaded to run the canary against
)

# Why a due chat canary round was skipped (label ``reason`` of canary_skipped_total).
CANARY_SKIP_REASONS: tuple[str, ...] = (
    "real_traffic",      # the stack's gateway saw a real chat in flight or within the interval
)

# Probe kinds (label ``probe``).
PROBES: tuple[str, ...] = ("models", "loaded", "chat", "health")


@dataclass(frozen=True)
class Metric:
    name: str
    type: str  # counter | gauge | histogram | info
    help: str
    labels: tuple[str, ...]

    @property
    def series_names(self) -> tuple[str, ...]:
        """Names as they appear in the exposition / PromQL."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        if self.type == "counter":
            return (f"{self.name}_total",)
        if self.type == "info":
            return (f"{self.name}_info",)
        return (self.name,)


_CACHED = " Cached: updated by the background probe loop, not at scrape time."

METRICS: tuple[Metric, ...] = (
    # -- per target -------------------------------------------------------
    Metric(f"{PREFIX}_up", "gauge",
           "1 if the target's last probe of its primary endpoint succeeded, else 0." + _CACHED,
           ("target", "kind")),
    Metric(f"{PREFIX}_probe_success", "gauge",
           "1 if the last probe of this kind succeeded, else 0." + _CACHED, ("target", "probe")),
    Metric(f"{PREFIX}_probe_duration_seconds", "histogram",
           "Duration of probes, by kind.", ("target", "probe")),
    Metric(f"{PREFIX}_probe_last_duration_seconds", "gauge",
           "Duration of the last probe of this kind." + _CACHED, ("target", "probe")),
    Metric(f"{PREFIX}_probe_last_timestamp_seconds", "gauge",
           "Unix time the last probe of this kind finished; use time() - this for staleness.",
           ("target", "probe")),
    Metric(f"{PREFIX}_probes", "counter", "Probes run, by kind.", ("target", "probe")),
    Metric(f"{PREFIX}_probe_failures", "counter",
           "Failed probes, by kind and closed-set reason.", ("target", "probe", "reason")),
    Metric(f"{PREFIX}_models_listed", "gauge",
           "Models listed by GET /v1/models (SDK 2.x lists its whole catalog)." + _CACHED,
           ("target",)),
    Metric(f"{PREFIX}_models_loaded", "gauge",
           "Chat models currently loaded on the target." + _CACHED, ("target",)),
    Metric(f"{PREFIX}_model_loaded", "gauge",
           "1 for each model loaded on the target (one series per loaded model)." + _CACHED,
           ("target", "model")),
    # -- chat canary (per target and model) -------------------------------
    Metric(f"{PREFIX}_chat_ttft_seconds", "histogram",
           "Chat canary time to first token: request sent to first chunk carrying content.",
           ("target", "model")),
    Metric(f"{PREFIX}_chat_duration_seconds", "histogram",
           "Chat canary total duration: request sent to end of stream.", ("target", "model")),
    Metric(f"{PREFIX}_chat_output_tokens", "counter",
           "Output tokens produced by chat canaries (from the stream's usage block).",
           ("target", "model")),
    Metric(f"{PREFIX}_chat_generation_seconds", "counter",
           "Time canaries spent generating (first token to end of stream); "
           "tokens/s = rate(output_tokens) / rate(generation_seconds).", ("target", "model")),
    Metric(f"{PREFIX}_chat_last_ttft_seconds", "gauge",
           "Time to first token of the last chat canary." + _CACHED, ("target", "model")),
    Metric(f"{PREFIX}_chat_last_tokens_per_second", "gauge",
           "Output tokens per second of the last chat canary." + _CACHED, ("target", "model")),
    Metric(f"{PREFIX}_canary_skipped", "counter",
           "Due chat canary rounds skipped, by closed-set reason (real_traffic: the stack's "
           "gateway saw a user's chat since the previous round, so the canary did not "
           "compete with it; the last canary values stay).", ("target", "reason")),
    Metric(f"{PREFIX}_canary_last_skip_timestamp_seconds", "gauge",
           "Unix time a due chat canary round was last skipped; a chat probe older than its "
           "interval while this is recent means the canary is yielding to users, not stuck.",
           ("target",)),
    # -- the exporter itself -----------------------------------------------
    Metric(f"{PREFIX}_exporter_build", "info", "Exporter version.", ("version",)),
    Metric(f"{PREFIX}_exporter_targets", "gauge", "Targets in the loaded config.", ()),
    Metric(f"{PREFIX}_exporter_loop_last_tick_timestamp_seconds", "gauge",
           "Unix time the probe loop last ran; stale means the loop is stuck.", ()),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def all_series_names() -> frozenset[str]:
    """Every series name PromQL may reference (plus the process_* client metrics)."""
    return frozenset(n for m in METRICS for n in m.series_names)
