"""HTTP/1.1 exchanges with the upstream, each on a FRESH connection (asyncio protocol).

Why fresh: Foundry Local writes response headers and the first chunk as two
small segments with Nagle on; on a kept-alive connection the client's delayed
ACK (40 ms on Linux) holds the second one back. A new connection starts in
quick-ACK mode, and TCP_QUICKACK is re-armed after every read anyway, so the
stall cannot happen mid-stream either. TCP_NODELAY makes our own request one
immediate segment. Each connection carries exactly one request.

Why a spare: connecting costs a few hundred microseconds of the time to first
token, so the client keeps ONE connection opened ahead of the next request
(never used before, so it is as fresh as a new one; dropped when the upstream
closes it or after ``SPARE_MAX_AGE``). Failing to open a spare is silent: only
a request's own connect counts as an upstream error.

Why a protocol and not streams + h11: a chat stream is one small read per
token, and the per-read cost is what the decode rate loses (profiled: stream
wakeups, per-read timeout scopes and h11's state machine were most of it). The
head is parsed once by ``_parse_head``; the body's chunked framing by a small
decoder; body pieces go straight to a sink called from ``data_received``.

Every failure is an :class:`UpstreamError` with a reason from the closed set in
``metrics.UPSTREAM_ERROR_REASONS``; timeouts are per phase (connect, headers,
idle gap between reads) plus an overall deadline; bodies are size-capped.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from ..config import Limits, Timeouts

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
# A peer that vanished (host off the LAN, cable out: no RST ever comes) is noticed in
# DEAD_PEER_S, not at the first-byte timeout (minutes: Foundry queues requests): data we
# sent unacknowledged that long, or keepalive probes unanswered, end the connection
# (TCP_USER_TIMEOUT, keepalive). A busy Foundry still ACKs, so a long wait is not cut.
DEAD_PEER_S = 10
_KEEPALIVE = tuple((getattr(socket, name), value) for name, value in (
    ("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3),
    ("TCP_USER_TIMEOUT", DEAD_PEER_S * 1000)) if hasattr(socket, name))
MAX_HEAD = 64 * 1024
SPARE_MAX_AGE = 10.0  # seconds an unused spare connection is trusted
_STATUS = re.compile(rb"HTTP/1\.[01] ([1-9][0-9][0-9])(?: [^\r\n]*)?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

Sink = Callable[[bytes], None]


class UpstreamError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    """Status and headers (names lower-cased) of one response head without its blank line."""
    lines = head.split(b"\r\n")
    m = _STATUS.fullmatch(lines[0])
    if m is None:
        raise UpstreamError("protocol", f"invalid HTTP from upstream: status line {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or _TOKEN.fullmatch(name) is None:
            raise UpstreamError("protocol", f"invalid HTTP from upstream: header line {line[:80]!r}")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):  # relayed to the client: no response splitting
            raise UpstreamError("protocol", "invalid HTTP from upstream: control character")
        headers.append((name.lower(), value))
    return int(m.group(1)), headers


class _Conn(asyncio.Protocol):
    """One upstream connection: head, then body pieces (to a sink or a buffer), then done."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.opened = time.monotonic()
        self.lost = False
        self._sock = None
        self._head_buf = b""
        self._head: asyncio.Future | None = None   # (status, headers) once the head is in
        self._done: asyncio.Future | None = None   # None once the body ended
        self._buf = b""          # undecoded body bytes (chunked framing)
        self._left = 0           # chunked: data bytes left in this chunk; length: body bytes left
        self._crlf = False       # chunked: the CRLF after a chunk's data is next
        self._framing = ""       # chunked | length | close
        self._received = 0
        self._cap = 0
        self._pieces: list[bytes] = []
        self._sink: Sink | None = None
        self._wake: asyncio.Future | None = None
        self._last = 0.0
        self._idle = 0.0
        self._reason = "idle_timeout"
        self._timers: list[asyncio.TimerHandle] = []
        self.error: BaseException | None = None
        self.ended = False
        self._paused = False

    # -- asyncio callbacks --------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in _KEEPALIVE:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
        if _QUICKACK is not None:
            # Our own handle on the socket (a dup): the loop's wrapper builds a socket
            # object, with a getsockname call, on every setsockopt (profiled: per read).
            self._sock = socket.socket(sock.family, sock.type, sock.proto, os.dup(sock.fileno()))

    def data_received(self, data: bytes) -> None:
        if self._sock is not None:
            try:  # noqa: SIM105 -- hot path (every read); suppress() costs a context manager
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        if self.error is not None or self.ended:
            return
        self._last = self.loop.time()
        try:
            if self._framing:
                self._body(data)
            elif self._head is not None:
                self._head_data(data)
            else:  # bytes while idle (a spare): not HTTP we asked for
                self.fail(UpstreamError("protocol", "upstream sent data before any request"))
        except UpstreamError as exc:
            self.fail(exc)
        except BaseException as exc:  # the sink's own failure (e.g. the client left)
            self.fail(exc)

    def eof_received(self) -> bool:
        self._closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._closed(exc)

    # -- phases -------------------------------------------------------------------
    def start(self, request: bytes, first_byte: float, idle: float, deadline: float,
              cap: int) -> asyncio.Future:
        """Send the request; the returned future gets (status, headers)."""
        self._head = self.loop.create_future()
        self._idle, self._cap = idle, cap
        self._last = self.loop.time()
        self._timers.append(self.loop.call_at(self._last + max(0.0, deadline - time.monotonic()),
                                              self._total_timeout))
        self._timers.append(self.loop.call_later(first_byte, self._header_timeout, first_byte))
        self.transport.write(request)
        return self._head

    def _head_data(self, data: bytes) -> None:
        buf = self._head_buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise UpstreamError("protocol", "invalid HTTP from upstream: head over 64 KiB")
                self._head_buf = buf
                return
            status, headers = _parse_head(buf[:end])
            buf = buf[end + 4:]
            if status >= 200:
                break  # 1xx: informational, the real head follows
        self._head_buf = b""
        te = b",".join(v for k, v in headers if k == b"transfer-encoding").lower()
        length = next((v for k, v in headers if k == b"content-length"), None)
        if status in (204, 304):
            self._framing, self._left = "length", 0
        elif te:
            if not te.rstrip().endswith(b"chunked"):
                raise UpstreamError("protocol", "invalid HTTP from upstream: transfer-encoding")
            self._framing = "chunked"
        elif length is not None:
            if not length.isdigit():
                raise UpstreamError("protocol", "invalid HTTP from upstream: content-length")
            self._framing, self._left = "length", int(length)
        else:
            self._framing = "close"
        self._timers.pop().cancel()  # the header timeout
        self._timers.append(self.loop.call_later(self._idle, self._idle_check))
        self._done = self.loop.create_future()
        self._head.set_result((status, headers))
        if buf or (self._framing == "length" and self._left == 0):
            self._body(buf)

    def _body(self, data: bytes) -> None:
        if self._framing == "chunked":
            out = self._dechunk(data)
        elif self._framing == "length":
            out = data[:self._left]
            self._left -= len(out)
            if self._left == 0:
                self.ended = True
        else:
            out = data
        if out:
            self._received += len(out)
            if self._received > self._cap:
                raise UpstreamError("too_large", f"response over {self._cap} bytes")
            if self._sink is not None:
                self._sink(out)
            else:
                self._pieces.append(out)
        if self.ended:
            self._finish(None)
        elif out and self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _dechunk(self, data: bytes) -> bytes:
        """Chunk data in ``data`` (plus what was left over); sets ``ended`` at the last chunk."""
        if not self._buf and not self._left:  # per token: one whole chunk, or its CRLF alone
            if self._crlf:
                if data == b"\r\n":
                    self._crlf = False
                    return b""
            else:
                eol = data.find(b"\r\n", 0, 18)
                if eol > 0 and _HEX.fullmatch(data, 0, eol) is not None:
                    end = eol + 2 + int(data[:eol], 16)
                    if end > eol + 2 and len(data) == end:
                        self._crlf = True
                        return data[eol + 2:]
                    if end > eol + 2 and len(data) == end + 2 and data.endswith(b"\r\n"):
                        return data[eol + 2:end]
        buf = self._buf + data if self._buf else data
        pos, n = 0, len(buf)
        out: list[bytes] = []
        while pos < n:
            if self._left:
                take = buf[pos:pos + self._left]
                out.append(take)
                pos += len(take)
                self._left -= len(take)
                self._crlf = not self._left
                continue
            if self._crlf:
                if n - pos < 2:
                    break
                if buf[pos:pos + 2] != b"\r\n":
                    raise UpstreamError("protocol", "invalid HTTP from upstream: chunk end")
                pos += 2
                self._crlf = False
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if n - pos > 1024:
                    raise UpstreamError("protocol", "invalid HTTP from upstream: chunk size line")
                break
            size = buf[pos:eol].split(b";", 1)[0].strip(b" \t")
            if _HEX.fullmatch(size) is None:
                raise UpstreamError("protocol", "invalid HTTP from upstream: chunk size")
            self._left = int(size, 16)
            if self._left == 0:  # last chunk; trailers (if any) end with an empty line
                rest = buf[eol + 2:]
                if rest.startswith(b"\r\n") or b"\r\n\r\n" in rest:
                    self.ended = True
                    pos = n
                    break
                if len(rest) > MAX_HEAD:
                    raise UpstreamError("protocol", "invalid HTTP from upstream: trailers")
                break  # wait for the end of the trailers (re-parsed from the size line)
            pos = eol + 2
        self._buf = buf[pos:] if pos < n else b""
        return out[0] if len(out) == 1 else b"".join(out)

    # -- ends -----------------------------------------------------------------------
    def _closed(self, exc: Exception | None = None) -> None:
        if self.error is not None or self.ended:
            return
        if self._head is None:
            return  # an idle spare went away: nothing was waiting for it
        if self._framing == "close":
            self.ended = True
            self._finish(None)
        elif self._done is None:
            self.fail(UpstreamError("reset", "upstream closed the connection before answering"))
        else:
            detail = f": {exc}" if exc else ""
            self.fail(UpstreamError("reset", f"upstream closed the connection mid-response{detail}"))

    def fail(self, exc: BaseException) -> None:
        if self.error is not None or (self._done is not None and self._done.done()):
            return  # already failed, or the body was complete and handed over
        self.error = exc
        self.abort()
        for fut in (self._head, self._done, self._wake):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved: whoever awaits it re-raises; nobody else logs it

    def _finish(self, _: object) -> None:
        for t in self._timers:
            t.cancel()
        for fut in (self._done, self._wake):
            if fut is not None and not fut.done():
                fut.set_result(None)

    def abort(self) -> None:
        for t in self._timers:
            t.cancel()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    # -- timers ---------------------------------------------------------------------
    def _header_timeout(self, budget: float) -> None:
        self.fail(UpstreamError("header_timeout", f"no data from upstream within {budget:g}s"))

    def _total_timeout(self) -> None:
        self.fail(UpstreamError("total_timeout", "response exceeded timeouts.total"))

    def _idle_check(self) -> None:
        # Re-armed lazily from the last read instead of rescheduled on every read.
        now = self.loop.time()
        due = now + self._idle if self._paused else self._last + self._idle
        if now >= due - 0.001:
            self.fail(UpstreamError("idle_timeout", f"no data from upstream within {self._idle:g}s"))
        else:
            self._timers[-1] = self.loop.call_at(due, self._idle_check)

    # -- consumers ------------------------------------------------------------------
    async def pieces(self) -> list[bytes]:
        """Body pieces received since the last call; [] once the body has ended."""
        while not self._pieces and not self.ended:
            if self.error is not None:
                raise self.error
            self._wake = self.loop.create_future()
            await self._wake
        out, self._pieces = self._pieces, []
        return out

    async def drive(self, sink: Sink) -> None:
        """Hand every body piece to ``sink`` (from ``data_received``) until the body ends."""
        for piece in self._pieces:
            sink(piece)
        self._pieces = []
        self._sink = sink
        if self.error is not None:
            raise self.error
        if not self.ended:
            await self._done
        if self.error is not None:
            raise self.error

    def pause(self) -> None:
        self._paused = True
        self.transport.pause_reading()

    def resume(self) -> None:
        # A paused upstream is not idle: its gap starts again now.
        self._paused, self._last = False, self.loop.time()
        if not self.transport.is_closing():
            self.transport.resume_reading()


class Exchange:
    """An upstream response: status and headers read, body still on the wire."""

    def __init__(self, conn: _Conn, status: int, headers: list[tuple[bytes, bytes]],
                 on_close: Callable[[], None] = lambda: None) -> None:
        self.status, self.headers, self._conn = status, headers, conn
        self._on_close = on_close

    def header(self, name: bytes) -> bytes:
        return next((v for k, v in self.headers if k == name), b"")

    async def body(self) -> AsyncIterator[bytes]:
        """Body pieces as they arrive (chunked framing removed)."""
        while pieces := await self._conn.pieces():
            for piece in pieces:
                yield piece

    async def read_all(self) -> bytes:
        return b"".join([piece async for piece in self.body()])

    async def drive(self, sink: Sink) -> None:
        """Push every body piece to ``sink`` as it arrives; an exception it raises ends the
        exchange and is re-raised here. Raises UpstreamError when the upstream fails."""
        await self._conn.drive(sink)

    def pause(self) -> None:
        """Stop reading from the upstream (the client is slower); ``resume`` to go on."""
        self._conn.pause()

    def fail(self, exc: BaseException) -> None:
        """End the exchange; ``drive`` raises ``exc``."""
        self._conn.fail(exc)

    def resume(self) -> None:
        self._conn.resume()

    def close(self) -> None:
        self._conn.abort()
        self._on_close()


class UpstreamClient:
    """Requests to one upstream base URL (root, optionally + /catalogs/local)."""

    def __init__(self, base_url: str, api_key: str | None, timeouts: Timeouts,
                 limits: Limits, auth_header: str = "authorization",
                 ca_file: str | None = None) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.base_path = parts.path.rstrip("/")
        self.netloc = parts.netloc.encode()
        self.api_key = api_key
        self._auth = b""
        if api_key:  # Bearer (OpenAI, edge gateways) or Azure OpenAI's api-key header
            self._auth = (b"api-key: " if auth_header == "api-key"
                          else b"authorization: Bearer ") + api_key.encode()
        # https (a cloud upstream, an edge behind TLS): verified against the system's CAs
        # or ca_file; never unverified.
        self._ssl = ssl.create_default_context(cafile=ca_file) if self.tls else None
        self.timeouts, self.limits = timeouts, limits
        self._spare: _Conn | None = None
        self._refill: asyncio.Task | None = None
        self._closed = False
        # Re-finds the upstream when it refuses connections (follow.py); None: never.
        self.follower = None

    def move_to(self, port: int) -> None:
        """Send to ``port`` from now on (the follower found the upstream there)."""
        self.port = port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.netloc = f"{host}:{port}".encode()
        if self._spare is not None:
            self._spare.abort()
            self._spare = None

    def target(self, path: str) -> str:
        """Upstream request target for a gateway path (``/v1/...``, ``/models/loaded``)."""
        return self.base_path + path

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        t = self.timeouts
        try:
            async with asyncio.timeout(t.connect):
                _, conn = await loop.create_connection(
                    lambda: _Conn(loop), self.host, self.port, ssl=self._ssl,
                    server_hostname=self.host if self.tls else None)
        except TimeoutError:
            raise UpstreamError("connect_timeout", f"no connection to upstream in {t.connect:g}s") from None
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamError("connect", "certificate verify failed: "
                                f"{exc.verify_message or exc.reason}; if the upstream uses a "
                                "private CA, set ca_file to its bundle") from None
        except ssl.SSLError as exc:
            raise UpstreamError("connect", f"TLS with upstream failed: {exc.reason or exc}") from None
        except OSError as exc:
            raise UpstreamError("connect", f"cannot connect to upstream: {exc.strerror or exc}") from None
        return conn

    async def _connect_or_follow(self) -> _Conn:
        """Connect; when refused and a follower finds the upstream elsewhere, connect there
        (nothing was sent yet, so nothing is duplicated)."""
        port = self.port
        try:
            return await self._connect()
        except UpstreamError as exc:
            if exc.reason != "connect" or self.follower is None:
                raise
            # Moved meanwhile by another request's scan, or found now: connect there.
            if self.port == port and not await self.follower.relocate():
                raise
        return await self._connect()

    def _take_spare(self) -> _Conn | None:
        conn, self._spare = self._spare, None
        if conn is None:
            return None
        if conn.lost or conn.error is not None or conn.transport.is_closing() \
                or time.monotonic() - conn.opened > SPARE_MAX_AGE:
            conn.abort()
            return None
        return conn

    def _replenish(self) -> None:
        """Open the next spare in the background (one at a time; failures are silent)."""
        if self._closed or self._spare is not None or self._refill is not None:
            return
        self._refill = asyncio.get_running_loop().create_task(self._open_spare())

    async def _open_spare(self) -> None:
        try:
            conn = await self._connect()
        except (UpstreamError, asyncio.CancelledError):
            return
        finally:
            self._refill = None
        if self._closed or self._spare is not None:
            conn.abort()
        else:
            self._spare = conn

    async def send(self, method: str, target: str, headers: list[tuple[bytes, bytes]],
                   body: bytes = b"") -> Exchange:
        """Send on the spare connection (or a new one) and wait for the response head."""
        t = self.timeouts
        deadline = time.monotonic() + t.total
        conn = self._take_spare() or await self._connect_or_follow()
        head = [b"%s %s HTTP/1.1" % (method.encode(), target.encode()),
                b"host: " + self.netloc, b"connection: close"]
        if body or method == "POST":
            head.append(b"content-length: %d" % len(body))
        if self._auth:
            head.append(self._auth)
        head += [k + b": " + v for k, v in headers]
        try:
            status, response_headers = await conn.start(
                b"\r\n".join(head) + b"\r\n\r\n" + body, t.first_byte, t.idle, deadline,
                self.limits.max_response_bytes)
        except BaseException:
            conn.abort()
            self._replenish()
            raise
        # The next spare is opened when this exchange closes, not now: connecting
        # here would compete with relaying this response's first token.
        return Exchange(conn, status, response_headers, self._replenish)

    def close(self) -> None:
        """Drop the spare connection (shutdown)."""
        self._closed = True
        if self._refill is not None:
            self._refill.cancel()
        if self._spare is not None:
            self._spare.abort()
            self._spare = None
