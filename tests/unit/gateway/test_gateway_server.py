"""The client side: request parsing, keep-alive, HTTP/1.0, chunked request bodies, bad requests."""

from __future__ import annotations

import asyncio

import pytest

from foundry_gateway.server import BadRequest, parse_head, serve_connection


def test_a_request_head_is_parsed_with_lowercase_names() -> None:
    req, length, chunked = parse_head(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 12\r\nAuthorization:  Bearer k ")
    assert (req.method, req.target, length, chunked) == (b"POST", b"/v1/chat/completions", 12, False)
    assert req.headers == [(b"host", b"x"), (b"content-length", b"12"),
                           (b"authorization", b"Bearer k")]
    assert req.http_11 and req.keep_alive


@pytest.mark.parametrize(("head", "keep_alive"), [
    (b"GET / HTTP/1.1\r\nConnection: close", False),
    (b"GET / HTTP/1.1\r\nConnection: Keep-Alive, Close", False),
    (b"GET / HTTP/1.0", False),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive", False),
    (b"GET / HTTP/1.1", True),
])
def test_keep_alive(head: bytes, keep_alive: bool) -> None:
    assert parse_head(head)[0].keep_alive is keep_alive


@pytest.mark.parametrize("head", [
    b"GET / HTTP/2.0",
    b"GET /a b HTTP/1.1",
    b"GET / HTTP/1.1\r\nBad Name: x",
    b"GET / HTTP/1.1\r\n folded",
    b"GET / HTTP/1.1\r\nX: a\x00b",
    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2",
    b"POST / HTTP/1.1\r\nContent-Length: -1",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3",
])
def test_malformed_heads_are_refused(head: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_head(head)


def _exchange(raw: bytes, max_body: int = 1000) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Send raw bytes to serve_connection with an echo handler; (all output, requests seen)."""
    seen: list[tuple[bytes, bytes]] = []

    async def handler(client, req, body, _received) -> None:
        seen.append((req.target, body))
        if req.target == b"/stream":
            client.start(200, [(b"content-type", b"text/plain")])
            client.send_nowait(b"one")
            await client.send(b"two")
            client.end()
        else:
            await client.respond(200, [(b"content-type", b"text/plain")], body or b"empty")

    async def too_large(client, _req) -> None:
        await client.respond(413, [], b"too large")

    async def go() -> bytes:
        server = await asyncio.start_server(
            lambda r, w: serve_connection(r, w, handler, max_body, too_large), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        writer.write_eof()
        out = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        server.close()
        return out

    return asyncio.run(go()), seen


def test_pipelined_requests_on_one_connection() -> None:
    out, seen = _exchange(b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
                          b"GET /b HTTP/1.1\r\n\r\n")
    assert seen == [(b"/a", b"hi"), (b"/b", b"")]
    assert out == (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nhi"
                   b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nempty")


def test_streamed_answer_is_chunked_on_11_and_until_close_on_10() -> None:
    out, _ = _exchange(b"GET /stream HTTP/1.1\r\n\r\n")
    assert out.endswith(b"transfer-encoding: chunked\r\n\r\n3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")
    out, seen = _exchange(b"GET /stream HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n")
    assert out.endswith(b"connection: close\r\n\r\nonetwo") and len(seen) == 1


def test_chunked_request_body_is_decoded() -> None:
    _, seen = _exchange(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n")
    assert seen == [(b"/a", b"abcde")]


@pytest.mark.parametrize("raw", [
    b"POST /a HTTP/1.1\r\nContent-Length: 1001\r\n\r\n",
    b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + b"x" * 1001 + b"\r\n0\r\n\r\n",
])
def test_oversize_bodies_get_413_and_the_connection_closes(raw: bytes) -> None:
    out, seen = _exchange(raw + b"GET /b HTTP/1.1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ") and b"connection: close" in out and seen == []


def test_a_bad_request_gets_400_and_nothing_reaches_the_handler() -> None:
    out, seen = _exchange(b"GARBAGE\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b'"bad_request"' in out
    assert seen == []
