"""Fakes for the exporter's unit tests: a scripted clock and a timed byte stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2 as httpx  # the exporter's client library (exporter/foundry_exporter/httpio.py)

from foundry_exporter.httpio import Clock


class FakeClock:
    """Monotonic time that only moves when a test (or a FakeStream) moves it."""

    def __init__(self) -> None:
        self.t = 0.0

    def clock(self) -> Clock:
        return Clock(monotonic=lambda: self.t, wall=lambda: 1_000_000.0 + self.t)


class TimedStream(httpx.AsyncByteStream):
    """Yields each chunk when the fake clock reaches its timestamp."""

    def __init__(self, clock: FakeClock, chunks: list[tuple[float, bytes]]) -> None:
        self._clock = clock
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for at, chunk in self._chunks:
            self._clock.t = at
            yield chunk


def sse(obj: dict | str) -> bytes:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()


def delta(content: str | None = None, finish: str | None = None, usage: int | None = None) -> bytes:
    body: dict = {"choices": []}
    if content is not None or finish is not None:
        body["choices"] = [{"delta": {"content": content} if content is not None else {},
                            "finish_reason": finish}]
    if usage is not None:
        body["usage"] = {"completion_tokens": usage}
    return sse(body)
