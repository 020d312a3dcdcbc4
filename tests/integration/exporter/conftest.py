"""Fixtures for the exporter's integration tests: the fault server and a probe harness."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from foundry_exporter.app import probe_context
from foundry_exporter.collector import SnapshotCollector
from foundry_exporter.config import Canary, Module, Target
from foundry_exporter.probes import run_cycle
from foundry_exporter.results import ProbeResult
from foundry_exporter.state import fold, initial_state
from tests.integration.exporter.faultserver import FaultServer


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.stop()


@dataclass(frozen=True)
class Probed:
    results: dict[str, ProbeResult]
    registry: CollectorRegistry
    leaked_tasks: list[str]

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def probe_once(url: str, *, kind: str = "foundry", timeout: float = 1.0, model: str = "auto",
               max_body_bytes: int = 1 << 20, probes: tuple[str, ...] | None = None) -> Probed:
    """One real probe round against ``url`` in a fresh event loop, rendered to a fresh registry,
    through the exporter's production HTTP clients (``app.probe_context``)."""
    from foundry_exporter.config import KIND_PROBES

    target = Target("t", url, Module(kind, probes or KIND_PROBES[kind], timeout,
                                     canary=Canary(model=model)))

    async def go() -> tuple[tuple[ProbeResult, ...], list[str]]:
        async with probe_context(max_body_bytes) as ctx:
            results = await run_cycle(ctx, target)
        # A task still pending after a few loop turns is a leak; an async generator's
        # aclose() that the loop's finalizer hook scheduled on garbage collection (httpx2
        # drops one when a chunked body is abandoned at the cap) finishes within them.
        for _ in range(10):
            leaked = [repr(t.get_coro()) for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if not leaked:
                break
            await asyncio.sleep(0)
        return results, leaked

    results, leaked = asyncio.run(go())
    snapshot = fold(initial_state((target,)), results)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot))
    return Probed({r.probe: r for r in results}, registry, leaked)
