"""The background probe loop: one asyncio task per target plus a heartbeat.

A due canary round first asks the upstream for real traffic (``probes.activity``)
and is skipped, counted, when a user's chat was seen since the previous round
began; the listings run regardless.

Invariants: each target's cycles never overlap (a slow cycle delays the next
one instead of piling up); every cycle's results are folded into the store in
one atomic swap; ``run`` returns only after every task it started has ended,
so shutdown leaks no task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .config import Target
from .probes import ProbeContext, run_cycle
from .probes.activity import MAX_YIELD_ROUNDS, canary_skip
from .results import ProbeResult
from .state import Store, fold, tick

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 1.0


class Scheduler:
    def __init__(self, targets: tuple[Target, ...], store: Store, ctx: ProbeContext) -> None:
        self._targets = targets
        self._store = store
        self._ctx = ctx

    async def run(self, stop: asyncio.Event) -> None:
        """Probe every target on its interval until ``stop`` is set."""
        tasks = [asyncio.create_task(self._target_loop(t), name=f"probe:{t.name}")
                 for t in self._targets]
        tasks.append(asyncio.create_task(self._heartbeat(), name="probe:heartbeat"))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _heartbeat(self) -> None:
        clock = self._ctx.clock
        while True:
            self._store.update(tick, clock.monotonic(), clock.wall())
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _target_loop(self, target: Target) -> None:
        clock = self._ctx.clock
        due = clock.monotonic()
        last_canary: float | None = None  # the last round, run or skipped
        last_run: float | None = None     # the last round that ran
        every = target.module.canary.interval
        has_chat = "chat" in target.module.probes
        yielding = False
        while True:
            started = clock.monotonic()
            chat = every is None or last_canary is None or started - last_canary >= every - 0.001
            skip = None
            try:
                if chat and has_chat:  # a due round: yield it to real traffic (never raises)
                    # Traffic since the previous round began (the first: one interval back).
                    window = (every or target.interval) if last_canary is None \
                        else clock.monotonic() - last_canary
                    skip = await canary_skip(
                        self._ctx, target, window,
                        ran_ago=None if last_run is None else started - last_run,
                        max_yield=MAX_YIELD_ROUNDS * (every or target.interval))
                results = await run_cycle(self._ctx, target, chat=chat and skip is None)
            except asyncio.CancelledError:
                raise
            except Exception:  # run_cycle never raises; keep the loop alive if it ever does
                log.exception("probe cycle for %s crashed", target.name)
                results = ()
            if chat:  # run or skipped, the round is used: the next one is an interval away
                last_canary = started
                if skip is None:
                    last_run = started
                if (skip is not None) != yielding:
                    yielding = skip is not None
                    log.info("%s: chat canary %s", target.name, "skips rounds while real traffic "
                             "flows" if yielding else "runs again (no real traffic in its interval)")
            self._log_changes(results)
            self._store.update(fold, results, clock.monotonic(), skip)
            due += target.interval
            now = clock.monotonic()
            if due < now:  # overran: skip the missed slots rather than bursting
                due = now
            await asyncio.sleep(due - now)

    def _log_changes(self, results: tuple[ProbeResult, ...]) -> None:
        snapshot = self._store.get()
        for r in results:
            with contextlib.suppress(KeyError):
                before = snapshot.targets[r.target].last.get(r.probe)
                if before is None or before.reason != r.reason:
                    if r.ok:
                        log.info("%s/%s ok (%.3fs)", r.target, r.probe, r.duration)
                    else:
                        log.warning("%s/%s failed: %s %s", r.target, r.probe, r.reason, r.detail)
