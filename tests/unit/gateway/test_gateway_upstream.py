"""The upstream side: head parsing, body framing in any split, failures as reasons, the spare."""

from __future__ import annotations

import asyncio
import time

import pytest

from foundry_gateway.config import Limits, Timeouts
from foundry_gateway.upstreams.connection import Exchange, UpstreamClient, UpstreamError, _Conn

EVENT = b'data: {"choices":[{"delta":{"content":" a"},"index":0}]}\n\n'
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
# Foundry's shape (size line + data, then the CRLF in the next write), an extension, trailers.
CHUNKED = (b"%x\r\n" % len(EVENT) + EVENT + b"\r\n" + b"%x\r\n" % len(EVENT) + EVENT
           + b"\r\n" + b"3;ext=1\r\nabc\r\n" + b"0\r\nX-Trailer: 1\r\n\r\n")
BODY = EVENT + EVENT + b"abc"


class FakeTransport:
    def __init__(self) -> None:
        self.sent = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent += data

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


async def _exchange(pieces: list[bytes], eof: bool = False, cap: int = 1 << 20):
    loop = asyncio.get_running_loop()
    conn = _Conn(loop)
    conn.transport = FakeTransport()
    head = conn.start(b"GET / HTTP/1.1\r\n\r\n", 5, 5, time.monotonic() + 5, cap)
    for piece in pieces:
        conn.data_received(piece)
    if eof:
        conn.eof_received()
    status, headers = await head
    return Exchange(conn, status, headers)


def _read(pieces: list[bytes], eof: bool = False, cap: int = 1 << 20) -> tuple[int, dict, bytes]:
    async def go():
        ex = await _exchange(pieces, eof, cap)
        return ex.status, dict(ex.headers), await ex.read_all()
    return asyncio.run(go())


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 10_000])
def test_chunked_body_in_any_split(size: int) -> None:
    status, headers, body = _read(_pieces(SSE_HEAD + CHUNKED, size))
    assert (status, headers[b"content-type"], body) == (200, b"text/event-stream", BODY)


def test_pushed_pieces_are_the_body_and_the_push_ends_with_it() -> None:
    async def go():
        ex = await _exchange([SSE_HEAD + CHUNKED[:40]])
        got: list[bytes] = []
        driving = asyncio.ensure_future(ex.drive(got.append))
        await asyncio.sleep(0)
        assert not driving.done()
        ex._conn.data_received(CHUNKED[40:])
        await driving
        return b"".join(got)
    assert asyncio.run(go()) == BODY


def test_content_length_and_until_close_bodies() -> None:
    assert _read([b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef"])[2] == b"abc"
    assert _read([b"HTTP/1.1 200 OK\r\n\r\nab", b"cd"], eof=True)[2] == b"abcd"


def test_informational_heads_are_skipped() -> None:
    status, _, body = _read([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                             b"Content-Length: 2\r\n\r\nok"])
    assert (status, body) == (201, b"ok")


@pytest.mark.parametrize(("data", "eof", "reason"), [
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", False, "protocol"),
    (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", False, "protocol"),
    (b"HTTP/1.1 200 OK\r\nX: a\x0bb\r\n\r\n", False, "protocol"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", False, "protocol"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", False, "protocol"),
    (b"HTTP/1.1 200 O", True, "reset"),
])
def test_bad_heads_are_reasons(data: bytes, eof: bool, reason: str) -> None:
    with pytest.raises(UpstreamError) as err:
        _read([data], eof=eof)
    assert err.value.reason == reason


@pytest.mark.parametrize(("data", "eof", "reason"), [
    (SSE_HEAD + b"zz\r\nab\r\n", False, "protocol"),
    (SSE_HEAD + b"2\r\nabXY0\r\n\r\n", False, "protocol"),
    (SSE_HEAD + b"5\r\nab", True, "reset"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", True, "reset"),
    (SSE_HEAD + b"8\r\n12345678\r\n", False, "too_large"),
])
def test_bad_bodies_are_reasons(data: bytes, eof: bool, reason: str) -> None:
    with pytest.raises(UpstreamError) as err:
        _read([data], eof=eof, cap=6)
    assert err.value.reason == reason


def test_a_failing_sink_ends_the_exchange_with_its_error() -> None:
    class Gone(Exception):
        pass

    def sink(_: bytes) -> None:
        raise Gone

    async def go():
        ex = await _exchange([SSE_HEAD])
        driving = asyncio.ensure_future(ex.drive(sink))
        await asyncio.sleep(0)
        ex._conn.data_received(CHUNKED)
        with pytest.raises(Gone):
            await driving
        assert ex._conn.transport.closed
    asyncio.run(go())


def test_idle_upstream_times_out_between_reads() -> None:
    async def go():
        loop = asyncio.get_running_loop()
        conn = _Conn(loop)
        conn.transport = FakeTransport()
        head = conn.start(b"GET / HTTP/1.1\r\n\r\n", 5, 0.05, time.monotonic() + 5, 1 << 20)
        conn.data_received(SSE_HEAD + CHUNKED[:20])
        await head
        with pytest.raises(UpstreamError) as err:
            await conn.drive(lambda _: None)
        return err.value.reason
    assert asyncio.run(go()) == "idle_timeout"


class CountingServer:
    """Answers each request with a tiny response; records connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[int] = []  # connection number of each request
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.writers.append(writer)
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        self.requests.append(number)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()


def test_each_request_has_its_own_connection_and_the_next_one_is_opened_ahead() -> None:
    async def go():
        srv = CountingServer()
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = UpstreamClient(f"http://127.0.0.1:{port}", None, Timeouts(), Limits())
        seen = []
        for _ in range(3):
            ex = await client.send("GET", "/x", [])
            assert await ex.read_all() == b"ok"
            ex.close()
            for _ in range(100):  # the spare is being opened in the background
                if client._spare is not None:
                    break
                await asyncio.sleep(0.01)
            seen.append((srv.connections, list(srv.requests)))
        # the server closes every idle connection: the spare dies, the next request
        # still succeeds on a connection of its own
        for w in srv.writers:
            w.transport.abort()
        await asyncio.sleep(0.05)
        ex = await client.send("GET", "/x", [])
        assert await ex.read_all() == b"ok"
        ex.close()
        client.close()
        server.close()
        return seen, srv.requests
    seen, requests = asyncio.run(go())
    assert seen == [(2, [1]), (3, [1, 2]), (4, [1, 2, 3])]  # request n on connection n
    assert len(set(requests)) == len(requests) == 4
