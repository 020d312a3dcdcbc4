"""One HTTP/1.1 exchange with the upstream on a FRESH connection (h11 over asyncio).

Why fresh: Foundry Local writes response headers and the first chunk as two
small segments with Nagle on; on a kept-alive connection the client's delayed
ACK (40 ms on Linux) holds the second one back. A new connection starts in
quick-ACK mode, and TCP_QUICKACK is re-armed after every read anyway, so the
stall cannot happen mid-stream either. Connecting to a loopback server costs
~0.1 ms. TCP_NODELAY makes our own request one immediate segment.

Every failure is an :class:`UpstreamError` with a reason from the closed set in
``metrics.UPSTREAM_ERROR_REASONS``; timeouts are per phase (connect, headers,
idle gap between reads) plus an overall deadline; bodies are size-capped.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import h11

from .config import Limits, Timeouts

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_READ = 65536


class UpstreamError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class _Wire:
    """One upstream connection: reads with a per-phase timeout under an overall deadline."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: h11.Connection, deadline: float) -> None:
        self.reader, self.writer, self.conn, self.deadline = reader, writer, conn, deadline
        self.sock = writer.get_extra_info("socket")
        self.eof = False

    def broken(self, exc: h11.RemoteProtocolError) -> UpstreamError:
        """h11's complaint as a reason: an early EOF is a lost connection, not bad HTTP."""
        if self.eof:
            return UpstreamError("reset", "upstream closed the connection mid-response")
        return UpstreamError("protocol", f"invalid HTTP from upstream: {exc}")

    async def receive(self, timeout: float, reason: str) -> None:
        budget = min(timeout, self.deadline - time.monotonic())
        if budget <= 0:
            raise UpstreamError("total_timeout", "response exceeded timeouts.total")
        try:
            async with asyncio.timeout(budget):
                data = await self.reader.read(_READ)
        except TimeoutError:
            total = time.monotonic() >= self.deadline - 0.001
            raise UpstreamError("total_timeout" if total else reason,
                                f"no data from upstream within {budget:g}s") from None
        except OSError as exc:
            raise UpstreamError("reset", f"upstream connection lost: {exc}") from None
        if _QUICKACK is not None:
            try:  # noqa: SIM105 -- hot path (every read); suppress() costs a context manager
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        self.eof = not data
        try:
            self.conn.receive_data(data)
        except h11.RemoteProtocolError as exc:
            raise self.broken(exc) from None

    async def head(self, timeout: float) -> h11.Response:
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise self.broken(exc) from None
            if event is h11.NEED_DATA:
                await self.receive(timeout, "header_timeout")
            elif isinstance(event, h11.Response):
                return event
            elif not isinstance(event, h11.InformationalResponse):
                raise UpstreamError("reset", "upstream closed the connection before answering")

    def abort(self) -> None:
        if not self.writer.is_closing():
            self.writer.transport.abort()


class Exchange:
    """An upstream response: status and headers read, body still on the wire."""

    def __init__(self, wire: _Wire, response: h11.Response, timeouts: Timeouts, cap: int) -> None:
        self.status = response.status_code
        self.headers: list[tuple[bytes, bytes]] = list(response.headers)
        self._wire, self._timeouts, self._cap = wire, timeouts, cap

    def header(self, name: bytes) -> bytes:
        return next((v for k, v in self.headers if k == name), b"")

    async def body(self) -> AsyncIterator[bytes]:
        """Body pieces as they arrive (chunked framing removed)."""
        received = 0
        conn = self._wire.conn
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise self._wire.broken(exc) from None
            if event is h11.NEED_DATA:
                await self._wire.receive(self._timeouts.idle, "idle_timeout")
                continue
            if isinstance(event, h11.Data):
                received += len(event.data)
                if received > self._cap:
                    raise UpstreamError("too_large", f"response over {self._cap} bytes")
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:  # ConnectionClosed: the body ended without its end marker
                raise UpstreamError("reset", "upstream closed the connection mid-response")

    async def read_all(self) -> bytes:
        return b"".join([piece async for piece in self.body()])

    def close(self) -> None:
        self._wire.abort()


class UpstreamClient:
    """Requests to one upstream base URL (root, optionally + /catalogs/local)."""

    def __init__(self, base_url: str, api_key: str | None, timeouts: Timeouts,
                 limits: Limits) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.base_path = parts.path.rstrip("/")
        self.netloc = parts.netloc.encode()
        self.api_key = api_key
        self.timeouts, self.limits = timeouts, limits

    def target(self, path: str) -> str:
        """Upstream request target for a gateway path (``/v1/...``, ``/models/loaded``)."""
        return self.base_path + path

    async def send(self, method: str, target: str, headers: list[tuple[bytes, bytes]],
                   body: bytes = b"") -> Exchange:
        """Connect, send, and wait for the response head."""
        t = self.timeouts
        deadline = time.monotonic() + t.total
        try:
            async with asyncio.timeout(t.connect):
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=_READ)
        except TimeoutError:
            raise UpstreamError("connect_timeout", f"no connection to upstream in {t.connect:g}s") from None
        except OSError as exc:
            raise UpstreamError("connect", f"cannot connect to upstream: {exc.strerror or exc}") from None
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        head = [(b"host", self.netloc), (b"connection", b"close")]
        if body or method == "POST":
            head.append((b"content-length", str(len(body)).encode()))
        if self.api_key:
            head.append((b"authorization", b"Bearer " + self.api_key.encode()))
        request = conn.send(h11.Request(method=method, target=target, headers=head + headers))
        request += conn.send(h11.Data(data=body)) if body else b""
        request += conn.send(h11.EndOfMessage())
        wire = _Wire(reader, writer, conn, deadline)
        try:
            writer.write(request)
            response = await wire.head(t.first_byte)
        except BaseException:
            wire.abort()
            raise
        return Exchange(wire, response, t, self.limits.max_response_bytes)
