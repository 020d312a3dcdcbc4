"""Wiring: config -> store, client, scheduler, HTTP server; runs until SIGTERM/SIGINT.

The asyncio loop owns the main thread (probes, signals); the HTTP server runs
in a daemon thread. Shutdown order: cancel probe tasks, stop serving, close the
HTTP clients, so nothing is left running when ``run`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, ProcessCollector

from .collector import SnapshotCollector
from .config import Config
from .httpio import SYSTEM_CLOCK, Clock, make_client
from .ondemand import OnDemand
from .probes import ProbeContext
from .scheduler import Scheduler
from .state import Store, health, initial_state
from .web import make_app, serve

log = logging.getLogger(__name__)
HEARTBEAT_LIMIT = 10.0


@contextlib.asynccontextmanager
async def probe_context(max_body_bytes: int,
                        clock: Clock = SYSTEM_CLOCK) -> AsyncIterator[ProbeContext]:
    """The HTTP clients every probe uses in production (and the TTFT tests measure).

    Listings share a keep-alive pool; the chat canary gets a client without
    keep-alive, because on a reused connection a server that writes headers and
    first chunk as separate segments with Nagle on stalls TTFT by the client's
    delayed ACK (~40 ms; see ``httpio.make_client``).
    """
    async with make_client() as client, make_client(keepalive=False) as stream_client:
        yield ProbeContext(client, clock, max_body_bytes, stream_client)


def build_registry(store: Store) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(store.get))
    ProcessCollector(registry=registry)
    return registry


async def serve_until_stopped(config: Config, listen_address: str,
                              stop: asyncio.Event | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    store = Store(initial_state(config.targets, clock.monotonic()))
    stale_after = config.healthz_stale_after()
    async with probe_context(config.max_body_bytes, clock) as ctx:
        app = make_app(
            build_registry(store),
            lambda: health(store.get(), clock.monotonic(), stale_after, HEARTBEAT_LIMIT),
            OnDemand(config, ctx, loop, store.get))
        server = serve(app, listen_address)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                  name="http", daemon=True)
        thread.start()
        log.info("listening on %s with %d targets, %d probe URLs", listen_address,
                 len(config.targets), len(config.probe_urls))
        try:
            await Scheduler(config.targets, store, ctx).run(stop)
        finally:
            log.info("shutting down")
            await asyncio.to_thread(server.shutdown)
            server.server_close()


def run(config: Config, listen_address: str) -> int:
    # A scrape thread holding the GIL delays the loop's chunk timestamps by up to
    # the switch interval (5 ms by default); 1 ms keeps TTFT error small.
    sys.setswitchinterval(0.001)
    asyncio.run(serve_until_stopped(config, listen_address))
    return 0
