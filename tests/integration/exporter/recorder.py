"""A loopback TCP listener that records every byte clients send it.

``Recorder()`` answers each connection with a 404 and closes it (a target the
exporter must never reach); ``Recorder(upstream=(host, port))`` relays both
ways to a real server (Foundry Local) so a test can count what the exporter
sent there. Bytes only, no HTTP parsing: nothing the exporter sends can hide.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Recorder:
    def __init__(self, upstream: tuple[str, int] | None = None) -> None:
        self.upstream = upstream
        self.connections = 0
        self._sent = bytearray()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sent(self) -> bytes:
        """Everything clients have sent so far, all connections concatenated."""
        with self._lock:
            return bytes(self._sent)

    def count(self, needle: bytes) -> int:
        return self.sent().count(needle)

    def start(self) -> Recorder:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("recorder did not start within 10 s")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.run_until_complete(asyncio.sleep(0))  # let cancelled handlers unwind
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.upstream is None:
                self._record(await reader.read(65536))
                writer.write(_NOT_FOUND)
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            back = asyncio.create_task(self._pipe(up_reader, writer, record=False))
            await self._pipe(reader, up_writer, record=True)
            await back
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    record: bool) -> None:
        try:
            while data := await reader.read(65536):
                if record:
                    self._record(data)
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()

    def _record(self, data: bytes) -> None:
        with self._lock:
            self._sent += data
