"""The immutable probe state and the pure fold that advances it.

Invariants: a :class:`Snapshot` (and everything it holds) is never mutated
after construction; ``fold`` returns a new one. The background loop is the only
writer and swaps the reference under :class:`Store`'s lock; scrapes read one
reference and render it, so a scrape never sees half an update.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from .config import Target
from .metrics import CANARY_SKIP_REASONS, FAILURE_REASONS, LATENCY_BUCKETS
from .results import CanarySkip, ChatStats, ProbeResult


@dataclass(frozen=True)
class Hist:
    """A histogram's state: per-bucket (non-cumulative) counts over LATENCY_BUCKETS, +Inf last."""

    counts: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS) + 1)
    total: float = 0.0

    def observe(self, value: float) -> Hist:
        i = next((i for i, le in enumerate(LATENCY_BUCKETS) if value <= le), len(LATENCY_BUCKETS))
        counts = (*self.counts[:i], self.counts[i] + 1, *self.counts[i + 1:])
        return Hist(counts, self.total + value)

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for le, n in zip((*map(str, LATENCY_BUCKETS), "+Inf"), self.counts, strict=True):
            running += n
            out.append((le, running))
        return out

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class ChatSeries:
    """Accumulated canary measurements for one (target, model)."""

    ttft: Hist = Hist()
    duration: Hist = Hist()
    output_tokens: int = 0
    generation_seconds: float = 0.0
    last: ChatStats | None = None


@dataclass(frozen=True)
class TargetState:
    name: str
    kind: str
    probes: tuple[str, ...]                          # enabled, in run order; [0] drives up
    last: dict[str, ProbeResult] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    durations: dict[str, Hist] = field(default_factory=dict)
    chat: dict[str, ChatSeries] = field(default_factory=dict)
    canary_skips: dict[str, int] = field(default_factory=dict)  # reason -> due rounds skipped
    last_skip_wall: float | None = None
    last_cycle_monotonic: float | None = None

    @property
    def up(self) -> bool | None:
        primary = self.last.get(self.probes[0])
        return None if primary is None else primary.ok


@dataclass(frozen=True)
class Snapshot:
    targets: dict[str, TargetState]
    started_monotonic: float = 0.0
    tick_monotonic: float | None = None
    tick_wall: float | None = None


def initial_state(targets: tuple[Target, ...], now_monotonic: float = 0.0) -> Snapshot:
    """Counters start at zero for every enabled (target, probe[, reason]) so rate() works."""
    states = {}
    for t in targets:
        probes = t.module.probes
        states[t.name] = TargetState(
            t.name, t.kind, probes,
            runs={p: 0 for p in probes},
            failures={(p, r): 0 for p in probes for r in FAILURE_REASONS},
            durations={p: Hist() for p in probes},
            canary_skips={r: 0 for r in CANARY_SKIP_REASONS}
            if "chat" in probes and t.module.canary.yield_to_traffic else {})
    return Snapshot(states, started_monotonic=now_monotonic)


def fold(snapshot: Snapshot, results: tuple[ProbeResult, ...],
         cycle_end_monotonic: float | None = None, skip: CanarySkip | None = None) -> Snapshot:
    """``snapshot`` advanced by one cycle's ``results`` (all for one target).

    A skipped canary round (``skip``) is counted and completes the cycle like a
    probe does: a target whose only probe is the canary must not look stuck
    (``health``) while it yields to real traffic. Its last canary values stay.
    """
    targets = dict(snapshot.targets)
    for r in results:
        targets[r.target] = _fold_one(targets[r.target], r)
    if skip is not None:
        t = targets[skip.target]
        targets[skip.target] = replace(
            t, canary_skips={**t.canary_skips, skip.reason: t.canary_skips.get(skip.reason, 0) + 1},
            last_skip_wall=skip.at)
    name = results[0].target if results else skip.target if skip is not None else None
    if name is not None and cycle_end_monotonic is not None:
        targets[name] = replace(targets[name], last_cycle_monotonic=cycle_end_monotonic)
    return replace(snapshot, targets=targets)


def _fold_one(t: TargetState, r: ProbeResult) -> TargetState:
    failures = t.failures
    if r.reason is not None:
        failures = {**failures, (r.probe, r.reason): failures.get((r.probe, r.reason), 0) + 1}
    chat = t.chat
    if r.chat is not None:
        chat = {**chat, r.chat.model: _fold_chat(chat.get(r.chat.model, ChatSeries()), r.chat)}
    return replace(
        t,
        last={**t.last, r.probe: r},
        runs={**t.runs, r.probe: t.runs.get(r.probe, 0) + 1},
        failures=failures,
        durations={**t.durations, r.probe: t.durations.get(r.probe, Hist()).observe(r.duration)},
        chat=chat,
    )


def _fold_chat(s: ChatSeries, c: ChatStats) -> ChatSeries:
    tokens, generation = s.output_tokens, s.generation_seconds
    if c.output_tokens is not None:
        tokens, generation = tokens + c.output_tokens, generation + c.generation
    return ChatSeries(s.ttft.observe(c.ttft), s.duration.observe(c.duration),
                      tokens, generation, c)


def tick(snapshot: Snapshot, monotonic: float, wall: float) -> Snapshot:
    return replace(snapshot, tick_monotonic=monotonic, tick_wall=wall)


def health(snapshot: Snapshot, now: float, stale_after: float,
           heartbeat_limit: float) -> tuple[bool, str]:
    """(healthy, reason): the loop ticks, and every target finished a cycle recently."""
    if snapshot.tick_monotonic is None:
        return False, "probe loop has not started"
    age = now - snapshot.tick_monotonic
    if age > heartbeat_limit:
        return False, f"probe loop stale: last tick {age:.1f}s ago (limit {heartbeat_limit:g}s)"
    for t in snapshot.targets.values():
        since = t.last_cycle_monotonic if t.last_cycle_monotonic is not None \
            else snapshot.started_monotonic
        if now - since > stale_after:
            return False, (f"target {t.name}: no probe cycle finished for {now - since:.1f}s "
                           f"(limit {stale_after:g}s)")
    return True, f"ok: {len(snapshot.targets)} targets, last tick {age:.1f}s ago"


class Store:
    """Holds the current snapshot; ``update`` swaps it atomically."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._lock = threading.Lock()
        self._snapshot = snapshot

    def get(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def update(self, fn, *args) -> Snapshot:
        with self._lock:
            self._snapshot = fn(self._snapshot, *args)
            return self._snapshot
