"""Blackbox-style ``/probe?target=…[&module=…]``, closed to everything the config did not name.

Invariants (issue 13, "/probe is an open proxy"):
- ``target`` is a configured target's name, or a URL listed under ``probe_urls``
  (compared exactly, after ``canonical_url``); anything else is refused before
  any I/O. There are no probe URLs by default.
- A configured target is never probed on request: /probe renders the
  background loop's cached results for it alone, so its canary keeps its
  interval however often /probe is called, and no other module (or key) can be
  combined with it.
- A URL target is probed only with a module its ``probe_urls`` entry names, so
  a module's API key goes only where the config sends it. Its listings run
  per request; its chat canary runs at most once per ``canary.interval`` of the
  module (default ``DEFAULT_PROBE_CANARY_INTERVAL``), otherwise the last canary
  result is served (its timestamp shows its age); a due canary is skipped, like
  the background loop's, when the URL is the stack's gateway and it saw real
  traffic within that interval.
Results of URL targets are rendered alone and never folded into /metrics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass, replace

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .collector import SnapshotCollector
from .config import DEFAULT_PROBE_CANARY_INTERVAL, Config, Target, canonical_url, url_problem
from .probes import ProbeContext, run_cycle
from .probes.activity import canary_skip
from .results import CanarySkip, ProbeResult
from .state import Snapshot, fold, initial_state

TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Refusal:
    """Why a /probe request is refused; nothing was sent anywhere."""

    message: str
    status: int = 400


def resolve(config: Config, target: str, module: str | None) -> Target | Refusal:
    """The configured Target (by name) or a new Target for an allowed URL, or a Refusal."""
    configured = {t.name: t for t in config.targets}
    if target in configured:
        if module is not None:
            return Refusal(f"target {target!r} is configured: its probes and key come from the "
                           "config; drop the module parameter")
        return configured[target]
    url = target if "://" in target else f"http://{target}"
    if problem := url_problem(url):
        return Refusal(f"target {target!r} {problem}")
    allowed = {p.url: p for p in config.probe_urls}
    entry = allowed.get(canonical_url(url))
    names = ", ".join(sorted(configured)) or "none"
    if entry is None:
        return Refusal(f"target {target!r} is neither a configured target ({names}) nor listed "
                       "under probe_urls in the exporter config", 403)
    if module is None:
        return Refusal(f"module parameter is missing; {entry.url} allows: {', '.join(entry.modules)}")
    if module not in entry.modules:
        return Refusal(f"module {module!r} is not allowed for {entry.url} (probe_urls allows: "
                       f"{', '.join(entry.modules)})", 403)
    return Target(name=entry.url, url=entry.url, module=config.modules[module])


class OnDemand:
    """Answers /probe requests (from HTTP threads) using the exporter's asyncio loop."""

    def __init__(self, config: Config, ctx: ProbeContext, loop: asyncio.AbstractEventLoop,
                 snapshot: Callable[[], Snapshot]) -> None:
        self._config = config
        self._ctx = ctx
        self._loop = loop
        self._snapshot = snapshot
        # (url, module) -> (monotonic start, result) of its last canary; touched on the loop only.
        self._canaries: dict[tuple[str, str], tuple[float, ProbeResult | None]] = {}

    def __call__(self, target: str, module: str | None, budget: float) -> tuple[int, str, bytes]:
        """(status, content type, body) for one /probe request; blocks the calling thread only."""
        resolved = resolve(self._config, target, module)
        if isinstance(resolved, Refusal):
            return resolved.status, TEXT, (resolved.message + "\n").encode()
        if resolved.name in {t.name for t in self._config.targets}:
            snapshot = self._snapshot()
            return _render(replace(snapshot, targets={target: snapshot.targets[target]}))
        budget = min(budget, resolved.module.timeout)
        assert module is not None  # resolve() refuses a URL target without one
        future = asyncio.run_coroutine_threadsafe(self._cycle(resolved, module, budget), self._loop)
        try:
            results, skip = future.result(timeout=budget + 2.0)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError, RuntimeError):
            future.cancel()
            return 504, TEXT, b"probe did not finish (exporter shutting down or overloaded)\n"
        return _render(fold(initial_state((resolved,)), results, None, skip))

    async def _cycle(self, target: Target, module: str,
                     budget: float) -> tuple[tuple[ProbeResult, ...], CanarySkip | None]:
        key = (target.url, module)
        every = target.module.canary.interval or DEFAULT_PROBE_CANARY_INTERVAL
        clock = self._ctx.clock
        now = clock.monotonic()
        started, cached = self._canaries.get(key, (None, None))
        due = "chat" in target.module.probes and (started is None or now - started >= every)
        skip = None
        if due:  # claimed before the first await: concurrent requests cannot both run it
            self._canaries[key] = (now, cached)
            window = every if started is None else now - started  # since the previous round
            # a skip uses the round; with nothing measured yet it runs
            skip = await canary_skip(self._ctx, target, window, budget,
                                     ran_ago=None if cached is None else 0.0)
        ran = due and skip is None
        left = max(0.001, budget - (clock.monotonic() - now))
        results = await run_cycle(self._ctx, target, chat=ran, budget=left)
        if ran:
            chat = next((r for r in results if r.probe == "chat"), None)
            self._canaries[key] = (now, chat)
        elif cached is not None:
            results = (*results, cached)
        return results, skip


def _render(snapshot: Snapshot) -> tuple[int, str, bytes]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, exporter=False))
    return 200, CONTENT_TYPE_LATEST, generate_latest(registry)
