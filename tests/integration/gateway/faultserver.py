"""A fault-injecting upstream for the gateway: what Foundry Local won't do on demand.

Raw asyncio streams, so each fault is exact. The first path segment picks the
scenario: the gateway's upstream URL is ``http://127.0.0.1:PORT/<scenario>``
and its requests arrive as ``/<scenario>/v1/chat/completions``.

- ``slowheaders``  accepts the request, never answers
- ``garbage``      a 200 event stream with non-JSON events between real chunks
- ``reset``        headers and one chunk, then a TCP reset
- ``idle``         headers and one chunk, then silence
- ``endless``      a chunk every 5 ms, forever
- ``redirect``     302 to somewhere else
- ``status500``    a 500 with a JSON error body
- ``nothttp``      bytes that are not an HTTP response
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading

MODEL = "fault-model-generic-cpu:1"


def chunk(text: str) -> bytes:
    obj = {"choices": [{"delta": {"content": text}, "finish_reason": None, "index": 0}],
           "model": MODEL, "object": "chat.completion.chunk"}
    return f"data: {json.dumps(obj)}\n\n".encode()


GARBAGE_BODY = chunk(" a") + b"data: this is not json\n\n" + b"data: [1, 2]\n\n" + chunk(" b") \
    + b"data: [DONE]\n\n"


def _framed(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


class FaultServer:
    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-faults", daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()

    def url(self, scenario: str) -> str:
        return f"http://127.0.0.1:{self.port}/{scenario}"

    def start(self) -> FaultServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault server did not start within 10 s")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._shutdown)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def _shutdown(self) -> None:
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.call_soon(self._loop.stop)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            scenario = head.split(b" ")[1].split(b"/")[1].decode()
            await getattr(self, f"_{scenario}")(reader, writer)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _slowheaders(self, reader, writer) -> None:
        await reader.read()  # until the gateway gives up and closes

    async def _garbage(self, reader, writer) -> None:
        writer.write(SSE_HEAD + _framed(GARBAGE_BODY) + b"0\r\n\r\n")
        await writer.drain()

    async def _reset(self, reader, writer) -> None:
        writer.write(SSE_HEAD + _framed(chunk(" a")))
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def _idle(self, reader, writer) -> None:
        writer.write(SSE_HEAD + _framed(chunk(" a")))
        await writer.drain()
        await reader.read()

    async def _endless(self, reader, writer) -> None:
        writer.write(SSE_HEAD)
        while True:
            writer.write(_framed(chunk(" more")))
            await writer.drain()
            await asyncio.sleep(0.005)  # the fault itself: a slow, endless producer

    async def _redirect(self, reader, writer) -> None:
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://example.invalid/\r\n"
                     b"Content-Length: 0\r\n\r\n")
        await writer.drain()

    async def _status500(self, reader, writer) -> None:
        body = b'{"error": {"message": "boom"}}'
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()

    async def _nothttp(self, reader, writer) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
