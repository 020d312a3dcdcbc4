"""The exporter's only HTTP adapter: client construction, bounded reads, and the
mapping of every transport/HTTP problem onto the closed failure-reason set.

Invariants:
- request sockets set TCP_NODELAY (cheap insurance: httpcore writes headers and
  body in separate send() calls); measured here it was not the TTFT culprit;
- the chat canary uses a client without keep-alive (see ``make_client``);
- no body is ever read past ``cap`` bytes (Content-Length is checked first,
  then the stream is counted), so a 50 MB answer costs at most ``cap``;
- the client library is httpx2, pydantic's maintained fork of httpx (same API,
  already in the stack's tree through openai). httpx 0.28/httpcore 1.0.9, no longer
  released, leaks a pool connection when a request is cancelled at the wrong moment
  (encode/httpcore#1093) and scans every pooled connection per request: under
  probe budgets that expire, the soak test grew to 700 connections in 20 s and
  slowed to a quarter of its probe rate. httpcore2 reclaims them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx  # httpx's maintained fork (pydantic), see the docstring

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
ERROR_BODY_CAP = 4096


class ProbeFailure(Exception):
    """Raised inside a probe to end it with a closed-set ``reason``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Clock:
    """Injected time sources: ``monotonic`` for durations, ``wall`` for timestamps."""

    monotonic: Callable[[], float] = time.perf_counter
    wall: Callable[[], float] = time.time


SYSTEM_CLOCK = Clock()


def make_client(transport: httpx.AsyncBaseTransport | None = None, *,
                keepalive: bool = True) -> httpx.AsyncClient:
    """An HTTP client for probes; tests inject ``httpx.MockTransport`` as ``transport``.

    ``keepalive=False`` gives every request a fresh connection: the chat canary
    needs it for honest TTFT. Servers that write the response headers and the
    first SSE chunk as separate small segments without TCP_NODELAY (Foundry
    Local's oatpp server does) hold the chunk back until the client ACKs the
    headers; on a fresh connection Linux ACKs at once (quick-ack mode), on a
    reused one it delays the ACK ~40 ms, which showed up as TTFT.
    ``trust_env=False``: probes target local servers, and a proxy from the
    environment would both misroute them and distort latency.
    """
    limits = httpx.Limits(max_keepalive_connections=None if keepalive else 0)
    transport = transport or httpx.AsyncHTTPTransport(socket_options=NODELAY, retries=0,
                                                      limits=limits)
    return httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False,
                             headers={"Accept-Encoding": "identity",
                                      "User-Agent": "foundry-exporter"})


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def status_reason(status: int, body: bytes) -> str | None:
    """The failure reason for an HTTP status, or None for 2xx."""
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return "unauthorized"
    if status == 404:
        return "not_found"
    if status == 400 and b"not loaded" in body.lower():
        return "model_not_loaded"
    if 400 <= status < 500:
        return "http_4xx"
    if status >= 500:
        return "http_5xx"
    return "invalid_response"  # 1xx/3xx: redirects are not followed on purpose


async def read_capped(response: httpx.Response, cap: int) -> bytes:
    """The whole body, or ProbeFailure("too_large") as soon as it exceeds ``cap``."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise ProbeFailure("too_large", f"Content-Length {length} > {cap}")
    parts: list[bytes] = []
    size = 0
    async with contextlib.aclosing(response.aiter_bytes()) as chunks:
        async for chunk in chunks:
            size += len(chunk)
            if size > cap:
                raise ProbeFailure("too_large", f"body over {cap} bytes")
            parts.append(chunk)
    return b"".join(parts)


async def check_status(response: httpx.Response) -> None:
    """ProbeFailure for a non-2xx answer, with the start of the error body as detail."""
    if 200 <= response.status_code < 300:
        return
    try:
        body = await read_capped(response, ERROR_BODY_CAP)
    except ProbeFailure:
        body = b""
    reason = status_reason(response.status_code, body)
    assert reason is not None
    raise ProbeFailure(reason, f"HTTP {response.status_code} {body[:200].decode('utf-8', 'replace')}")


async def get_json(client: httpx.AsyncClient, url: str, *, cap: int, timeout: float,
                   headers: dict[str, str]) -> Any:
    """GET ``url`` and decode its JSON body (bounded, classified failures)."""
    async with client.stream("GET", url, headers=headers, timeout=timeout) as response:
        await check_status(response)
        body = await read_capped(response, cap)
    try:
        return json.loads(body)
    except ValueError:
        kind = response.headers.get("content-type", "no content-type")
        raise ProbeFailure("invalid_response", f"not JSON ({kind})") from None


def classify(exc: BaseException, *, streaming: bool = False) -> tuple[str, str]:
    """(reason, detail) for an exception that escaped a probe body."""
    if isinstance(exc, ProbeFailure):
        return exc.reason, exc.detail
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError | TimeoutError):
        return "timeout", type(exc).__name__
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError) and streaming:
        return "stream_cut", str(exc)[:200]
    if isinstance(exc, httpx.ConnectError | httpx.NetworkError | OSError):
        return "connection", str(exc)[:200] or type(exc).__name__
    if isinstance(exc, httpx.ProtocolError | httpx.DecodingError | ValueError):
        return "invalid_response", str(exc)[:200]
    return "invalid_response", f"unexpected {type(exc).__name__}: {exc}"[:200]
