"""The client side: HTTP/1.1 (h11) over asyncio streams, keep-alive, bounded bodies.

One task per client connection reads a request (head within ``HEAD_TIMEOUT``,
body up to ``max_request_bytes`` -> 413 otherwise, judged from Content-Length
before a byte of body is read), hands it to the gateway, and loops while both
sides keep the connection. TCP_NODELAY on every accepted socket: our small
writes (headers, one SSE event) leave at once instead of waiting on the
client's delayed ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable

import h11

log = logging.getLogger(__name__)

HEAD_TIMEOUT = 30.0       # a request head (or the next one on a kept-alive connection)
BODY_TIMEOUT = 60.0       # gap between request body reads
_HIGH_WATER = 256 * 1024  # drain the client socket above this much buffered output
_READ = 65536


class ClientGone(Exception):
    """The client closed its connection while we were answering."""


class RequestTooLarge(Exception):
    pass


class ClientConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=32 * 1024)
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def _event(self, timeout: float):
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            async with asyncio.timeout(timeout):
                data = await self.reader.read(_READ)
            self.conn.receive_data(data)

    async def read_request(self, max_body: int) -> tuple[h11.Request, bytes] | None:
        """The next request and its body; None when the client is done with the connection."""
        event = await self._event(HEAD_TIMEOUT)
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
        length = _content_length(event.headers)
        if length is not None and length > max_body:
            raise RequestTooLarge
        parts: list[bytes] = []
        size = 0
        while True:
            body_event = await self._event(BODY_TIMEOUT)
            if isinstance(body_event, h11.Data):
                size += len(body_event.data)
                if size > max_body:
                    raise RequestTooLarge
                parts.append(bytes(body_event.data))
            elif isinstance(body_event, h11.EndOfMessage):
                return event, b"".join(parts)
            else:
                return None

    # -- answering -------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.writer.transport.is_closing():
            raise ClientGone
        self.writer.write(data)

    async def _drain(self) -> None:
        if self.writer.transport.get_write_buffer_size() > _HIGH_WATER:
            try:
                await self.writer.drain()
            except ConnectionError:
                raise ClientGone from None

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        out = self.conn.send(h11.Response(status_code=status, headers=headers,
                                          reason=_phrase(status)))
        out += self.conn.send(h11.Data(data=body)) if body else b""
        out += self.conn.send(h11.EndOfMessage())
        self._write(out)
        await self._drain()

    async def respond_json(self, status: int, doc: dict,
                           extra: list[tuple[bytes, bytes]] = ()) -> None:
        await self.respond(status, [(b"content-type", b"application/json"), *extra],
                           json.dumps(doc).encode())

    def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Send a response head whose body follows in pieces (chunked)."""
        head = self.conn.send(h11.Response(status_code=status, headers=headers,
                                           reason=_phrase(status)))
        # h11 chose the framing (chunked for HTTP/1.1, until-close for 1.0); body pieces
        # are framed here, per token, without its state machine (same bytes as h11.Data).
        self._chunked = b"\r\ntransfer-encoding: chunked\r\n" in head.lower()
        self._write(head)

    def send_nowait(self, data: bytes) -> None:
        """One body piece of a started response, written now (raises ClientGone)."""
        transport = self.writer.transport
        if transport.is_closing():
            raise ClientGone
        if data:  # an empty chunk would end the body
            transport.write(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)

    def congested(self) -> bool:
        return self.writer.transport.get_write_buffer_size() > _HIGH_WATER

    async def drained(self) -> None:
        try:
            await self.writer.drain()
        except ConnectionError:
            raise ClientGone from None

    async def send(self, data: bytes) -> None:
        self.send_nowait(data)
        await self._drain()

    def end(self) -> None:
        self._write(self.conn.send(h11.EndOfMessage()))

    def reusable(self) -> bool:
        """Start the next request/response cycle if both sides allow it."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
            return True
        return False

    def close(self) -> None:
        if not self.writer.transport.is_closing():
            self.writer.transport.close()


def _phrase(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    return None


Handler = Callable[[ClientConnection, h11.Request, bytes, float], Awaitable[None]]


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           handler: Handler, max_body: int,
                           on_too_large: Callable[[ClientConnection, h11.Request | None], Awaitable[None]]) -> None:
    client = ClientConnection(reader, writer)
    try:
        while True:
            try:
                got = await client.read_request(max_body)
            except RequestTooLarge:
                await on_too_large(client, None)
                return
            if got is None:
                return
            request, body = got
            await handler(client, request, body, time.monotonic())
            if not client.reusable():
                return
    except (TimeoutError, ClientGone, ConnectionError):
        pass
    except h11.RemoteProtocolError as exc:
        log.debug("bad request from client: %s", exc)
        if client.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            with contextlib.suppress(ClientGone, h11.LocalProtocolError):
                await client.respond_json(exc.error_status_hint, {"error": {
                    "message": "malformed HTTP request", "type": "invalid_request_error",
                    "code": "bad_request"}})
    finally:
        client.close()
