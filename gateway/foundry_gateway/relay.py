"""What the gateway learns from a chat stream, and what it passes on. Pure.

``StreamRelay.feed(bytes, now)`` returns the bytes to send to the client. It
forwards complete SSE events only (a partial event waits for its end, which
Foundry writes in the same segment), so it can drop exactly one event: the
usage-only chunk (``"choices": []`` + ``usage``) that the gateway asked for
when the client did not. Every other byte goes through unchanged, so the
client's body is byte-identical to a direct call.

Event framing and chunk interpretation are the exporter's (``SSEDecoder``,
``parse_chunk``): one definition of "a chunk carrying content" in the stack.
They run on every event until the first content chunk, and on any read that
mentions ``usage`` or ``error`` or is not LF-framed. After that, an event in
the exact compact shape Foundry writes (``data: {"choices":[{"delta":
{"content":"...``) is counted by a prefix test, ``[DONE]`` by equality, and
anything else still goes through the parser: the JSON parser costs more per
token than the tiny model's whole decode step (profiled: ~19 us of ~130 us).
Memory is bounded by the caller's response cap (an event never completes ->
the cap trips).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from foundry_exporter.sse import DONE, SSEDecoder, parse_chunk

_SEPARATOR = re.compile(rb"\r\n\r\n|\n\n")
# What Foundry (and OpenAI) write for a content delta; the next byte decides: '"' is "".
_CONTENT = b'data: {"choices":[{"delta":{"content":"'
_AT = len(_CONTENT)
_DONE_EVENT = b"data: [DONE]"


@dataclass
class StreamStats:
    first_content_at: float | None = None
    last_content_at: float | None = None
    gaps: list[float] = field(default_factory=list)  # drained by the caller after each feed
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    invalid_events: int = 0
    done: bool = False


class StreamRelay:
    """Feed upstream body bytes in order; get back what the client must receive."""

    def __init__(self, strip_usage: bool) -> None:
        self.strip_usage = strip_usage
        self.stats = StreamStats()
        self._pending = b""
        self._decoder = SSEDecoder()

    def feed(self, data: bytes, now: float) -> bytes:
        buf = self._pending + data if self._pending else data
        cut = _last_boundary(buf)
        if cut == 0:
            self._pending = buf
            return b""
        complete, self._pending = buf[:cut], buf[cut:]
        return self._observe(complete, now)

    def flush(self) -> bytes:
        """Whatever incomplete tail is left when the upstream ends the body."""
        tail, self._pending = self._pending, b""
        return tail

    def _observe(self, complete: bytes, now: float) -> bytes:
        if self.stats.first_content_at is not None and b'"usage"' not in complete \
                and b'"error"' not in complete and b"\r" not in complete:
            self._timestamps(self._scan(complete), now)  # per token: the whole read at once
            return complete
        # Event by event: parsed before the first content and when they mention usage or
        # an error (the usage-only one may be left out), scanned otherwise. A lagging
        # gateway can get many events in this read: none is parsed without a reason.
        keep: list[bytes] = []
        dropped = False
        total = 0
        for raw in _split(complete):
            if self.stats.first_content_at is not None and b"\r" not in raw \
                    and b'"usage"' not in raw and b'"error"' not in raw:
                total += self._scan(raw)
            else:
                contents, usage_only = self._read(self._decoder.feed(raw))
                total += contents
                if contents and self.stats.first_content_at is None:
                    self._timestamps(contents, now)
                    total -= contents
                if usage_only and self.strip_usage:
                    dropped = True
                    continue
            keep.append(raw)
        self._timestamps(total, now)
        return b"".join(keep) if dropped else complete

    def _scan(self, complete: bytes) -> int:
        """Content chunks among LF-framed events, parsing only those of another shape."""
        contents = 0
        other: list[bytes] = []
        for event in complete.split(b"\n\n"):
            if event.startswith(_CONTENT) and event[_AT:_AT + 1] != b'"':
                contents += 1
            elif event == _DONE_EVENT:
                self.stats.done = True
            elif event:
                other.append(event + b"\n\n")
        if other:
            contents += self._read(self._decoder.feed(b"".join(other)))[0]
        return contents

    def _read(self, datas: list[str]) -> tuple[int, bool]:
        """(content chunks, whether a usage-only chunk was among them)."""
        contents, usage_only = 0, False
        for data in datas:
            if data == DONE:
                self.stats.done = True
                continue
            try:
                chunk = parse_chunk(data)
            except ValueError:
                self.stats.invalid_events += 1
                continue
            contents += chunk.has_content
            if chunk.completion_tokens is not None:
                usage_only = self._usage(data) or usage_only
        return contents, usage_only

    def _timestamps(self, contents: int, now: float) -> None:
        st = self.stats
        if not contents:
            return
        if st.first_content_at is None:
            st.first_content_at = st.last_content_at = now
            contents -= 1
        if contents and st.last_content_at is not None:
            st.gaps.extend([(now - st.last_content_at) / contents] * contents)
            st.last_content_at = now

    def _usage(self, data: str) -> bool:
        """Record the usage block; True when this event carries usage and no choices."""
        obj = json.loads(data)
        usage = obj.get("usage") or {}
        self.stats.prompt_tokens = _int(usage.get("prompt_tokens"))
        self.stats.completion_tokens = _int(usage.get("completion_tokens"))
        return not obj.get("choices")


def _last_boundary(buf: bytes) -> int:
    """Index just past the last complete event in ``buf`` (0: none)."""
    i = buf.rfind(b"\n\n")  # per read: two plain scans, no generator
    j = buf.rfind(b"\r\n\r\n")
    return max(i + 2 if i >= 0 else 0, j + 4 if j >= 0 else 0)


def _split(complete: bytes) -> list[bytes]:
    """Complete events, each with its own trailing separator (bytes preserved)."""
    if b"\r" not in complete:
        parts = complete.split(b"\n\n")
        out = [part + b"\n\n" for part in parts[:-1]]
        return [*out, parts[-1]] if parts[-1] else out
    out, start = [], 0
    for m in _SEPARATOR.finditer(complete):
        out.append(complete[start:m.end()])
        start = m.end()
    if start < len(complete):
        out.append(complete[start:])
    return out


def usage_of(body: bytes) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens of a non-streamed JSON answer; (None, None) if absent."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None, None
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if not isinstance(usage, dict):
        return None, None
    return _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
