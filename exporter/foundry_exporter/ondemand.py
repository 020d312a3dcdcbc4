"""Blackbox-style on-demand probing for ``/probe?target=…&module=…``.

Runs one probe round on the exporter's asyncio loop (from a request thread) and
renders its results alone, with the same metric names as /metrics; nothing is
folded into the background state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import replace

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .collector import SnapshotCollector
from .config import Config, Target
from .probes import ProbeContext, run_cycle
from .state import fold, initial_state

TEXT = "text/plain; charset=utf-8"


def resolve(config: Config, target: str, module: str | None) -> Target | str:
    """The Target to probe, or a message saying why the request is wrong."""
    configured = {t.name: t for t in config.targets}
    if module is None:
        if target in configured:
            return configured[target]
        return (f"module parameter is missing; use one of: {', '.join(sorted(config.modules))} "
                f"(or target=<configured target name>)")
    if module not in config.modules:
        return f"unknown module {module!r}; use one of: {', '.join(sorted(config.modules))}"
    if target in configured:
        return replace(configured[target], module=config.modules[module])
    url = target if "://" in target else f"http://{target}"
    if not url.startswith(("http://", "https://")):
        return f"target {target!r} is not an http(s) URL"
    return Target(name=target, url=url.rstrip("/"), module=config.modules[module])


def probe_on_demand(config: Config, ctx: ProbeContext, loop: asyncio.AbstractEventLoop,
                    target: str, module: str | None,
                    budget: float | None) -> tuple[int, str, bytes]:
    """(status, content type, body) for one /probe request; blocks the calling thread only."""
    resolved = resolve(config, target, module)
    if isinstance(resolved, str):
        return 400, TEXT, (resolved + "\n").encode()
    budget = resolved.module.timeout if budget is None else min(budget, resolved.module.timeout)
    future = asyncio.run_coroutine_threadsafe(run_cycle(ctx, resolved, budget=budget), loop)
    try:
        results = future.result(timeout=budget + 2.0)
    except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError, RuntimeError):
        future.cancel()
        return 504, TEXT, b"probe did not finish (exporter shutting down or overloaded)\n"
    snapshot = fold(initial_state((resolved,)), results)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, exporter=False))
    return 200, CONTENT_TYPE_LATEST, generate_latest(registry)
