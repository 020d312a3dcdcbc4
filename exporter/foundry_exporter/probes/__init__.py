"""Probes: HTTP in, frozen :class:`~foundry_exporter.results.ProbeResult` out.

``run_probe`` is the exception boundary: whatever a probe body raises (except
cancellation, which must propagate for shutdown) becomes a failed result with a
closed-set reason. ``run_cycle`` runs one target's enabled probes in order and
is shared by the background loop and the on-demand ``/probe`` endpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..config import Target
from ..httpio import classify
from ..results import ProbeResult
from .base import Outcome, ProbeContext
from .chat import probe_chat
from .listing import chat_candidates, probe_health, probe_loaded, probe_models

__all__ = ["REGISTRY", "Outcome", "ProbeContext", "run_cycle", "run_probe"]

log = logging.getLogger(__name__)

ProbeFn = Callable[[ProbeContext, Target, tuple[str, ...] | None], Awaitable[Outcome]]
REGISTRY: dict[str, ProbeFn] = {
    "models": probe_models,
    "loaded": probe_loaded,
    "health": probe_health,
    "chat": probe_chat,
}


async def run_probe(ctx: ProbeContext, target: Target, probe: str,
                    candidates: tuple[str, ...] | None = None,
                    budget: float | None = None) -> ProbeResult:
    """Run one probe within ``budget`` seconds (default: the module timeout); never raises."""
    start = ctx.clock.monotonic()
    budget = target.module.timeout if budget is None else budget
    try:
        async with asyncio.timeout(budget):
            outcome = await REGISTRY[probe](ctx, target, candidates)
        reason, detail = outcome.failure or (None, "")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the boundary: a failed probe is data
        reason, detail = classify(exc)
        outcome = Outcome()
        if reason == "invalid_response" and detail.startswith("unexpected"):
            log.exception("probe %s/%s crashed", target.name, probe)
    return ProbeResult(target=target.name, probe=probe, ok=reason is None,
                       duration=ctx.clock.monotonic() - start, finished_at=ctx.clock.wall(),
                       reason=reason, detail=detail, models=outcome.models, chat=outcome.chat)


async def run_cycle(ctx: ProbeContext, target: Target, *, chat: bool = True,
                    budget: float | None = None) -> tuple[ProbeResult, ...]:
    """One round of ``target``'s probes: listings concurrently, then the canary.

    ``chat=False`` skips the canary (its own interval has not elapsed). The
    canary's "auto" model comes from this round's listing when there is one.
    ``budget`` (seconds, for /probe) bounds the whole round; without it each
    probe gets the module timeout.
    """
    enabled = target.module.probes
    deadline = None if budget is None else ctx.clock.monotonic() + budget

    def remaining() -> float | None:
        if deadline is None:
            return None
        return max(0.001, min(target.module.timeout, deadline - ctx.clock.monotonic()))

    listings = [p for p in enabled if p != "chat"]
    results = list(await asyncio.gather(
        *(run_probe(ctx, target, p, budget=remaining()) for p in listings)))
    if chat and "chat" in enabled:
        by_probe = {r.probe: r for r in results}
        source = by_probe.get("loaded" if target.kind == "foundry" else "models")
        candidates = chat_candidates(source.models) if source and source.ok else None
        results.append(await run_probe(ctx, target, "chat", candidates, budget=remaining()))
    return tuple(results)
