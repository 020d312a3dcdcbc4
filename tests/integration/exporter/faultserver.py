"""A fault-injecting OpenAI/Foundry look-alike for the exporter's integration tests.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length and chunked replies)
over raw asyncio streams so each fault can be produced exactly: a server stuck
before its headers, a body that drips, an SSE stream cut mid-way, 50 MB of JSON.

The first path segment picks the scenario, so one server serves every fault:
``http://127.0.0.1:PORT/<scenario>[/<n>]`` is a Foundry-kind target root, e.g.
``/ok``, ``/delay/200`` (first token after 200 ms), ``/status/500``, ``/hang``.
Every scenario answers with TCP_NODELAY set, except ``/nagle``: it answers like
Foundry Local's oatpp server (Nagle on, the response headers and the first SSE
chunk written as separate small segments), which stalls a client that reads on
a kept-alive connection until its delayed ACK fires (~40 ms on Linux).
Runs its own event loop in a daemon thread; ``stop()`` closes every connection.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading

MODEL = "fault-model-generic-cpu:1"
BIG = 50 * 1024 * 1024


def _chunk(obj: dict | str) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return f"data: {data}\n\n".encode()


def _delta(text: str | None, finish: str | None = None, usage: dict | None = None) -> dict:
    choices = [] if text is None and finish is None else [
        {"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}]
    out: dict = {"id": "c1", "object": "chat.completion.chunk", "model": MODEL, "choices": choices}
    if usage is not None:
        out["usage"] = usage
    return out


class FaultServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faultserver", daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()

    def url(self, scenario: str) -> str:
        return f"http://{self.host}:{self.port}/{scenario}"

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
            asyncio.start_server(self._handle, self.host, 0))
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
        self._loop.call_later(0.05, self._loop.stop)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # client went away, or stop() is tearing the server down
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((method, path))
        parts = path.strip("/").split("/")
        scenario = parts[0]
        w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY,
                                              0 if scenario == "nagle" else 1)
        arg = parts[1] if len(parts) > 1 and parts[1].isdigit() else None
        endpoint = "/" + "/".join(parts[2 if arg else 1:])
        return await self._serve(scenario, arg, endpoint, body, reader, w)

    async def _serve(self, scenario: str, arg: str | None, endpoint: str, body: bytes,
                     reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        is_chat = endpoint.endswith("/chat/completions")
        if scenario == "hang":
            while await reader.read(4096):  # answer nothing until the client goes away
                pass
            return False
        if scenario == "status":
            await self._send(w, int(arg or 500), b'{"error":{"message":"injected"}}')
            return True
        if scenario == "html":
            await self._send(w, 200, b"<html><body>login</body></html>", "text/html")
            return True
        if scenario == "badjson":
            await self._send(w, 200, b'{"data": [', "application/json")
            return True
        if scenario == "slowbody":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                w.write(b" ")
                await w.drain()
                await asyncio.sleep(0.05)
            return False
        if scenario == "huge":
            await self._send_huge(w)
            return False
        if scenario == "hugechunked":
            await self._send_chunked(w, [b'{"data": [' + b" " * (1 << 20)] * (BIG >> 20))
            return False
        if not is_chat:
            return await self._listing(endpoint, w)
        return await self._chat(scenario, arg, body, w)

    async def _listing(self, endpoint: str, w: asyncio.StreamWriter) -> bool:
        if endpoint.endswith("/v1/models"):
            await self._send(w, 200, json.dumps({"object": "list", "data": [
                {"id": MODEL, "object": "model"}, {"id": "whisper-tiny-generic-cpu:1"}]}).encode())
        elif endpoint == "/health":
            await self._send(w, 200, b'{"status":true}')
        elif endpoint.endswith("/models/loaded"):
            await self._send(w, 200, json.dumps([MODEL]).encode())
        else:
            await self._send(w, 404, b'{"error":{"message":"no such route"}}')
        return True

    async def _chat(self, scenario: str, arg: str | None, body: bytes,
                    w: asyncio.StreamWriter) -> bool:
        req = json.loads(body)
        if req.get("model") != MODEL:
            await self._send(w, 404, b'{"error":{"message":"model not found"}}')
            return True
        if scenario == "notloaded":
            await self._send(w, 400, b'{"error":{"message":"Model not loaded"}}')
            return True
        usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        events = [_delta("", None), _delta("o"), _delta("k"), _delta(None, "stop")]
        if scenario == "nagle":
            events = events[1:]  # the first chunk carries content: the stall is all TTFT
        if scenario != "nousage":
            events.append(_delta(None, usage=usage))
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        await w.drain()
        if scenario == "delay":
            await asyncio.sleep(int(arg or 0) / 1000)
        for i, event in enumerate(events):
            if scenario == "ssecut" and i == 2:
                w.write(b"5\r\ndata:")  # a chunk promised but never finished
                await w.drain()
                w.transport.abort()
                return False
            self._write_chunk(w, _chunk(event))
            await w.drain()
        self._write_chunk(w, _chunk("[DONE]"))
        w.write(b"0\r\n\r\n")
        await w.drain()
        return True

    @staticmethod
    def _write_chunk(w: asyncio.StreamWriter, data: bytes) -> None:
        w.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    async def _send(self, w: asyncio.StreamWriter, status: int, body: bytes,
                    ctype: str = "application/json") -> None:
        w.write(f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await w.drain()

    async def _send_huge(self, w: asyncio.StreamWriter) -> None:
        w.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {BIG}\r\n\r\n".encode())
        block = b" " * (1 << 20)
        for _ in range(BIG >> 20):
            w.write(block)
            await w.drain()

    async def _send_chunked(self, w: asyncio.StreamWriter, blocks: list[bytes]) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        for block in blocks:
            self._write_chunk(w, block)
            await w.drain()
        w.write(b"0\r\n\r\n")
        await w.drain()


def main() -> None:
    """Run standalone (e.g. for the benchmark, outside the measuring process):
    prints the port, serves until stdin closes."""
    import sys

    server = FaultServer().start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
