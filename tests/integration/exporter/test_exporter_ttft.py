"""TTFT through the exporter's PRODUCTION clients (``app.probe_context``), not a test's own.

The ~40 ms stall (ARCHITECTURE.md, "Measured in the running stack"): a server
that writes the response headers and the first chunk as separate small segments
with Nagle on holds the chunk until the client ACKs the headers, and a client
reading on a kept-alive connection delays that ACK (~40 ms on Linux). The
canary avoids it with a fresh connection per canary; re-enabling keep-alive on
the canary client fails these tests. Bounds are loose on purpose (the stall is
≥ 40 ms, an honest canary a few ms); accuracy numbers come from the exporter benchmark.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
from urllib.parse import urlsplit

from foundry_exporter.app import probe_context
from foundry_exporter.config import Canary, Module, Target
from foundry_exporter.httpio import make_client
from foundry_exporter.probes import ProbeContext, run_probe
from foundry_exporter.probes.chat import canary_request
from tests.integration.exporter.faultserver import MODEL, FaultServer

RUNS = 7


def _target(url: str, model: str) -> Target:
    return Target("t", url, Module("foundry", ("chat",), 10.0, canary=Canary(model=model)))


async def _ttfts(ctx: ProbeContext, target: Target, runs: int = RUNS) -> list[float]:
    out = []
    for _ in range(runs):
        result = await run_probe(ctx, target, "chat")
        assert result.ok and result.chat is not None, (result.reason, result.detail)
        out.append(result.chat.ttft)
    return out


def test_the_nagle_fault_stalls_a_kept_alive_reader(fault_server: FaultServer) -> None:
    """The fault mode is real: a keep-alive client (not the canary's) sees the stall."""
    async def go() -> list[float]:
        async with make_client() as keepalive:
            return await _ttfts(ProbeContext(keepalive), _target(fault_server.url("nagle"), MODEL))

    ttfts = asyncio.run(go())
    # The first request rides a fresh connection (quick-ack); the reused ones stall.
    assert statistics.median(ttfts[1:]) >= 0.035, ttfts


def test_production_canary_is_not_stalled_by_the_nagle_fault(fault_server: FaultServer) -> None:
    async def go() -> list[float]:
        async with probe_context(1 << 20) as ctx:
            return await _ttfts(ctx, _target(fault_server.url("nagle"), MODEL))

    ttfts = asyncio.run(go())
    assert statistics.median(ttfts) < 0.02, ttfts


def _raw_request(url: str, model: str) -> tuple[tuple[str, int], bytes]:
    u = urlsplit(url)
    body = json.dumps(canary_request(model, 8)).encode()
    head = (f"POST {u.path}/v1/chat/completions HTTP/1.1\r\nHost: {u.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return (u.hostname or "127.0.0.1", u.port or 80), head.encode() + body


def _raw_socket_ttft(address: tuple[str, int], request: bytes) -> float:
    """Truth: a fresh blocking socket, clock started right before sendall, first content delta.

    Independent of the exporter's code (its own crude scan over raw bytes).
    """
    with socket.create_connection(address) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started, buf = time.perf_counter(), b""
        s.sendall(request)
        while chunk := s.recv(65536):
            now = time.perf_counter()
            buf += chunk
            for line in buf.split(b"\n"):
                if line.startswith(b"data: {") and any(
                        (c.get("delta") or {}).get("content")
                        for c in json.loads(line[6:]).get("choices", [])):
                    return now - started
    raise AssertionError("the stream ended before any content")


def test_canary_ttft_matches_a_raw_socket_measurement_on_real_foundry(foundry_server) -> None:
    url = f"{foundry_server.root_url}/catalogs/local"
    target = _target(url, foundry_server.model_id)
    address, request = _raw_request(url, foundry_server.model_id)

    async def go() -> tuple[list[float], list[float]]:
        raw, ours = [], []
        async with probe_context(1 << 20) as ctx:
            for _ in range(11):  # alternate, so load drift hits both alike
                raw.append(_raw_socket_ttft(address, request))  # blocks the loop: nothing else runs
                ours.extend(await _ttfts(ctx, target, 1))
        return raw, ours

    raw, ours = asyncio.run(go())
    error = statistics.median(abs(o - r) for r, o in zip(raw, ours, strict=True))
    # Keep-alive on the canary adds ~40 ms here (Foundry's oatpp server has Nagle on).
    assert error < 0.02, (raw, ours)
