"""Wiring: config -> recorder, upstream client, model list, gateway, listeners.

Runs until SIGTERM/SIGINT; then stops accepting, gives in-flight requests
``DRAIN_SECONDS`` to finish, and cancels the rest, so nothing is left running
when ``run`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import prometheus_client

from .config import Config
from .proxy import Gateway
from .recorder import Recorder
from .server import serve_connection
from .upstreams.connection import UpstreamClient
from .upstreams.follow import Follower
from .upstreams.models import ModelList
from .upstreams.pool import Pool

log = logging.getLogger(__name__)
DRAIN_SECONDS = 5.0


def build(config: Config) -> tuple[Gateway, Recorder]:
    recorder = Recorder(config.per_user.max_users,
                        tuple((u.name, u.kind) for u in config.upstreams))
    clients, lists = [], []
    for up in config.upstreams:
        client = UpstreamClient(up.url, up.api_key, config.timeouts, config.limits,
                                up.auth_header, up.ca_file)
        models = None if up.cloud else ModelList(client, up.url, config.models_cache_ttl)
        if up.follow and models is not None:
            client.follower = Follower(client, models.targets,
                                       lambda m=models: (*m.known, *recorder.models_seen()),
                                       on_move=recorder.upstream_moved)
        clients.append(client)
        lists.append(models)
    return Gateway(config, recorder, Pool(config, clients, lists)), recorder


def split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


async def serve_until_stopped(config: Config, listen: tuple[str, ...],
                              stop: asyncio.Event | None = None,
                              ready: asyncio.Future | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Not possible outside the main thread (tests run the gateway in a thread).
        with contextlib.suppress(RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    gateway, _ = build(config)
    tasks: set[asyncio.Task] = set()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        tasks.add(task)
        try:
            await serve_connection(reader, writer, gateway.handle,
                                   config.limits.max_request_bytes, gateway.too_large)
        finally:
            tasks.discard(task)

    servers = []
    try:
        for address in listen:
            host, port = split_host_port(address)
            servers.append(await asyncio.start_server(on_client, host, port, backlog=512,
                                                      reuse_address=True))
    except OSError as exc:
        for s in servers:
            s.close()
        raise SystemExit(f"cannot listen on {address}: {exc.strerror}; pick a free port "
                         "with --listen-address or listen_addresses") from None
    bound = [f"{s.sockets[0].getsockname()[0]}:{s.sockets[0].getsockname()[1]}" for s in servers]
    for member in gateway.pool.members:  # never mistake ourselves for the upstream
        if member.client.follower is not None:
            member.client.follower.skip_ports = {s.sockets[0].getsockname()[1] for s in servers}
    log.info("listening on %s, upstream %s", ", ".join(bound), ", ".join(
        f"{u.name} {u.url}" + (" (cloud)" if u.cloud else "")
        + (" (followed to a new port if it moves)" if u.follow else "")
        for u in config.upstreams))
    if ready is not None:
        ready.set_result(bound)
    await stop.wait()
    log.info("shutting down")
    for s in servers:
        s.close()
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=DRAIN_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    gateway.pool.close()  # the prober, the spare upstream connections
    for s in servers:
        await s.wait_closed()


def run(config: Config, listen: tuple[str, ...]) -> int:
    # Process-wide, hence here and not in Recorder: no *_created series (they double
    # the series count and no dashboard reads them).
    prometheus_client.disable_created_metrics()
    try:  # libuv's loop: less per-wakeup overhead on the TTFT path (not on Windows)
        import uvloop
    except ImportError:
        asyncio.run(serve_until_stopped(config, listen))
    else:
        uvloop.run(serve_until_stopped(config, listen))
    return 0

