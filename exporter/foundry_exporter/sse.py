"""Incremental Server-Sent Events parsing for OpenAI-style chat streams.

Pure: bytes in, decoded ``data:`` payloads out. It never buffers more than one
incomplete event, so the caller's byte cap bounds memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DONE = "[DONE]"


class SSEDecoder:
    """Feed raw bytes; get back the ``data`` field of each complete event."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[str]:
        self._buf += chunk
        events: list[str] = []
        while True:
            idx, sep_len = _event_end(self._buf)
            if idx < 0:
                return events
            raw, self._buf = self._buf[:idx], self._buf[idx + sep_len:]
            data = [line[5:].removeprefix(b" ") for line in raw.replace(b"\r\n", b"\n").split(b"\n")
                    if line.startswith(b"data:")]
            if data:
                events.append(b"\n".join(data).decode("utf-8", "replace"))


def _event_end(buf: bytes) -> tuple[int, int]:
    best = (-1, 0)
    for sep in (b"\n\n", b"\r\n\r\n"):
        i = buf.find(sep)
        if i >= 0 and (best[0] < 0 or i < best[0]):
            best = (i, len(sep))
    return best


@dataclass(frozen=True)
class Chunk:
    """What the canary needs from one ``chat.completion.chunk``."""

    has_content: bool
    finished: bool
    completion_tokens: int | None


def parse_chunk(data: str) -> Chunk:
    """Interpret one event payload; raises ValueError when it is not a chunk object."""
    obj: Any = json.loads(data)
    if not isinstance(obj, dict):
        raise ValueError("chunk is not a JSON object")
    if "error" in obj:
        raise ValueError(f"error event: {str(obj['error'])[:200]}")
    has_content = finished = False
    for choice in obj.get("choices") or []:
        if not isinstance(choice, dict):
            raise ValueError("choice is not an object")
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls"):
            has_content = True
        if choice.get("finish_reason"):
            finished = True
    usage = obj.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)):
        raise ValueError("usage.completion_tokens is not an integer")
    return Chunk(has_content, finished, tokens)
