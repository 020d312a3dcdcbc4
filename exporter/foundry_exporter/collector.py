"""Renders a :class:`~foundry_exporter.state.Snapshot` as Prometheus metric families.

Pure over the snapshot: no HTTP, no clock reads, no httpx import. Every family
is built from ``metrics.METRICS`` (names, types, HELP, labels live only there),
so a metric cannot be exposed without being declared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from . import __version__
from .metrics import BY_NAME, PREFIX
from .state import Snapshot, TargetState

_FAMILY = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily,
           "histogram": HistogramMetricFamily, "info": InfoMetricFamily}


def _family(suffix: str) -> Metric:
    spec = BY_NAME[f"{PREFIX}_{suffix}"]
    return _FAMILY[spec.type](spec.name, spec.help, labels=list(spec.labels))


def render(snapshot: Snapshot, *, exporter: bool = True) -> list[Metric]:
    """All families for ``snapshot``; ``exporter=False`` omits the self-metrics (for /probe)."""
    fams = {s: _family(s) for s in (
        "up", "probe_success", "probe_duration_seconds", "probe_last_duration_seconds",
        "probe_last_timestamp_seconds", "probes", "probe_failures", "models_listed",
        "models_loaded", "model_loaded", "chat_ttft_seconds", "chat_duration_seconds",
        "chat_output_tokens", "chat_generation_seconds", "chat_last_ttft_seconds",
        "chat_last_tokens_per_second", "canary_skipped", "canary_last_skip_timestamp_seconds")}
    for t in snapshot.targets.values():
        _render_target(t, fams.__getitem__)
    out = list(fams.values())
    if exporter:
        build = _family("exporter_build")
        build.add_metric([], {"version": __version__})
        targets = _family("exporter_targets")
        targets.add_metric([], len(snapshot.targets))
        out += [build, targets]
        if snapshot.tick_wall is not None:
            tick = _family("exporter_loop_last_tick_timestamp_seconds")
            tick.add_metric([], snapshot.tick_wall)
            out.append(tick)
    return out


def _render_target(t: TargetState, f: Callable[[str], Metric]) -> None:
    if t.up is not None:
        f("up").add_metric([t.name, t.kind], 1.0 if t.up else 0.0)
    for probe in t.probes:
        labels = [t.name, probe]
        f("probes").add_metric(labels, t.runs.get(probe, 0))
        hist = t.durations.get(probe)
        if hist is not None:
            f("probe_duration_seconds").add_metric(labels, hist.cumulative(), hist.total)
        last = t.last.get(probe)
        if last is not None:
            f("probe_success").add_metric(labels, 1.0 if last.ok else 0.0)
            f("probe_last_duration_seconds").add_metric(labels, last.duration)
            f("probe_last_timestamp_seconds").add_metric(labels, last.finished_at)
    for (probe, reason), n in t.failures.items():
        f("probe_failures").add_metric([t.name, probe, reason], n)
    listed = t.last.get("models")
    if listed is not None and listed.ok and listed.models is not None:
        f("models_listed").add_metric([t.name], len(listed.models))
    loaded = t.last.get("loaded")
    if loaded is not None and loaded.ok and loaded.models is not None:
        f("models_loaded").add_metric([t.name], len(loaded.models))
        for model in loaded.models:
            f("model_loaded").add_metric([t.name, model], 1.0)
    for reason, n in t.canary_skips.items():
        f("canary_skipped").add_metric([t.name, reason], n)
    if t.last_skip_wall is not None:
        f("canary_last_skip_timestamp_seconds").add_metric([t.name], t.last_skip_wall)
    for model, s in t.chat.items():
        labels = [t.name, model]
        f("chat_ttft_seconds").add_metric(labels, s.ttft.cumulative(), s.ttft.total)
        f("chat_duration_seconds").add_metric(labels, s.duration.cumulative(), s.duration.total)
        f("chat_output_tokens").add_metric(labels, s.output_tokens)
        f("chat_generation_seconds").add_metric(labels, s.generation_seconds)
        if s.last is not None:
            f("chat_last_ttft_seconds").add_metric(labels, s.last.ttft)
            if s.last.tokens_per_second is not None:
                f("chat_last_tokens_per_second").add_metric(labels, s.last.tokens_per_second)


class SnapshotCollector:
    """A prometheus_client collector over whatever ``get_snapshot`` returns now."""

    def __init__(self, get_snapshot: Callable[[], Snapshot], *, exporter: bool = True) -> None:
        self._get = get_snapshot
        self._exporter = exporter

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families vary with the snapshot; nothing to pre-declare

    def collect(self) -> Iterator[Metric]:
        return iter(render(self._get(), exporter=self._exporter))
