"""The chat canary: one tiny streamed completion, timed.

Timing invariants (all on the injected monotonic clock):
- ``sent`` is taken when httpcore starts writing the request headers (httpx
  "trace" extension), i.e. after any TCP connect, exactly where a raw-socket
  client would start its clock; transports without tracing fall back to the
  moment before the request is handed to the client;
- a chunk's arrival time is taken as soon as the transport yields it, before
  any parsing, and TTFT ends at the first chunk carrying content;
- the stream ends at ``data: [DONE]`` (or EOF after a finish_reason).
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx2 as httpx  # the exporter's client library (exporter/foundry_exporter/httpio.py)

from ..config import AUTO, Target
from ..httpio import ProbeFailure, auth_headers, check_status
from ..results import ChatStats
from ..sse import DONE, SSEDecoder, parse_chunk
from .activity import CANARY_HEADER
from .base import Outcome, ProbeContext
from .listing import list_candidates
from .urls import chat_url

PROMPT = "Reply with one word: ok"
_SENT_EVENT = "http11.send_request_headers.started"


def canary_request(model: str, max_tokens: int) -> dict[str, Any]:
    """The fixed canary body: deterministic, short, usage reported in-stream."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
        "max_tokens": max_tokens,
    }


async def probe_chat(ctx: ProbeContext, target: Target,
                     candidates: tuple[str, ...] | None) -> Outcome:
    model = target.module.canary.model
    if model == AUTO:
        if candidates is None:
            candidates = await list_candidates(ctx, target)
        if not candidates:
            raise ProbeFailure("no_chat_model", "no chat model is loaded")
        model = candidates[0]

    clock = ctx.clock
    marks: dict[str, float] = {}

    async def trace(event: str, _info: dict) -> None:
        if event == _SENT_EVENT:
            marks["sent"] = clock.monotonic()

    body = canary_request(model, target.module.canary.max_tokens)
    # Marked, so the stack's gateway relays it without counting it as a user's chat.
    headers = {"Accept": "text/event-stream", CANARY_HEADER: "1",
               **auth_headers(target.module.api_key)}
    before = clock.monotonic()
    async with ctx.canary_client.stream("POST", chat_url(target.kind, target.url), json=body,
                                 headers=headers, timeout=target.module.timeout,
                                 extensions={"trace": trace}) as response:
        await check_status(response)
        ctype = response.headers.get("content-type", "")
        if "text/event-stream" not in ctype:
            raise ProbeFailure("invalid_response", f"expected an SSE stream, got {ctype or 'none'}")
        return await _time_stream(response, ctx, model, marks.get("sent", before))


class StreamTimer:
    """Folds (arrival time, raw bytes) into canary timings; pure, no I/O.

    The stream ends at ``data: [DONE]``; bytes after it are only counted
    against the cap (the reader drains them so the connection can be reused).
    """

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._decoder = SSEDecoder()
        self._size = 0
        self.first: float | None = None
        self.end: float | None = None
        self.finished = False
        self.tokens: int | None = None

    def feed(self, now: float, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._cap:
            raise ProbeFailure("too_large", f"stream over {self._cap} bytes")
        if self.end is not None:
            return
        for data in self._decoder.feed(chunk):
            if data.strip() == DONE:
                self.end = now
                return
            try:
                parsed = parse_chunk(data)
            except ValueError as exc:
                raise ProbeFailure("invalid_response", f"bad chunk: {exc}") from None
            if parsed.has_content and self.first is None:
                self.first = now
            self.finished = self.finished or parsed.finished
            if parsed.completion_tokens is not None:
                self.tokens = parsed.completion_tokens

    def outcome(self, model: str, sent: float, eof: float) -> Outcome:
        """The canary's verdict once the stream ended (at [DONE] or at ``eof``)."""
        if self.end is None and not self.finished:
            raise ProbeFailure("stream_cut", "stream ended without [DONE] or finish_reason")
        if self.first is None:
            raise ProbeFailure("invalid_response", "stream carried no content")
        end = self.end if self.end is not None else eof
        stats = ChatStats(model=model, ttft=self.first - sent, duration=end - sent,
                          generation=end - self.first, output_tokens=self.tokens)
        if self.tokens is None:
            return Outcome(chat=stats, failure=("no_usage", "stream carried no usage block"))
        return Outcome(chat=stats)


async def _time_stream(response: httpx.Response, ctx: ProbeContext, model: str,
                       sent: float) -> Outcome:
    clock = ctx.clock
    timer = StreamTimer(ctx.max_body_bytes)
    try:
        async with contextlib.aclosing(response.aiter_raw()) as chunks:
            async for chunk in chunks:
                # Timestamp first: parsing must not count against the server.
                timer.feed(clock.monotonic(), chunk)
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise ProbeFailure("stream_cut", str(exc)[:200] or type(exc).__name__) from None
    return timer.outcome(model, sent, clock.monotonic())
