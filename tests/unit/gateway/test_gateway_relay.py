"""The stream relay: byte-identical pass-through, usage-chunk stripping, timing, usage."""

from __future__ import annotations

import json

import pytest

from foundry_gateway.relay import StreamRelay, usage_of


def _event(obj: dict | str) -> bytes:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()


def _chunk(text: str | None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    return _event({"choices": [{"delta": delta, "finish_reason": finish, "index": 0}],
                   "object": "chat.completion.chunk"})


USAGE = _event({"choices": [], "object": "chat.completion.chunk",
                "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}})
STREAM = (_chunk("") + _chunk(" a") + _chunk(" b") + _chunk(" c") + _chunk(None, "length")
          + USAGE + _event("[DONE]"))
WITHOUT_USAGE = STREAM.replace(USAGE, b"")


def _relay(data: bytes, strip: bool, piece: int) -> tuple[bytes, StreamRelay]:
    relay = StreamRelay(strip)
    out = b"".join(relay.feed(data[i:i + piece], float(i)) for i in range(0, len(data), piece))
    return out + relay.flush(), relay


@pytest.mark.parametrize("piece", [1, 7, 100, len(STREAM)])
def test_stripping_removes_exactly_the_usage_chunk(piece: int) -> None:
    out, relay = _relay(STREAM, strip=True, piece=piece)
    assert out == WITHOUT_USAGE
    assert (relay.stats.prompt_tokens, relay.stats.completion_tokens) == (12, 3)
    assert relay.stats.done


@pytest.mark.parametrize("piece", [1, 13, len(STREAM)])
def test_without_stripping_every_byte_passes(piece: int) -> None:
    out, relay = _relay(STREAM, strip=False, piece=piece)
    assert out == STREAM
    assert relay.stats.completion_tokens == 3


def test_usage_on_a_chunk_with_choices_is_never_dropped() -> None:
    last = _event({"choices": [{"delta": {}, "finish_reason": "stop", "index": 0}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    data = _chunk(" a") + last + _event("[DONE]")
    out, relay = _relay(data, strip=True, piece=len(data))
    assert out == data and relay.stats.completion_tokens == 2


def test_crlf_events_and_partial_tail_are_kept() -> None:
    data = _chunk(" a").replace(b"\n\n", b"\r\n\r\n") + b"data: {\"trunc"
    out, relay = _relay(data, strip=True, piece=5)
    assert out == data
    assert relay.stats.first_content_at is not None


def test_first_content_and_gaps() -> None:
    relay = StreamRelay(strip_usage=False)
    relay.feed(_chunk(""), 1.0)              # role chunk: no content
    assert relay.stats.first_content_at is None
    relay.feed(_chunk(" a"), 2.0)
    relay.feed(_chunk(" b") + _chunk(" c"), 4.0)  # two chunks in one read: two gaps of 1 s
    relay.feed(_chunk(" d"), 4.5)
    assert relay.stats.first_content_at == 2.0
    assert relay.stats.gaps == [1.0, 1.0, 0.5]


def test_garbage_events_are_counted_and_relayed() -> None:
    data = _event("not json") + _event({"choices": "nope"}) + _chunk(" a")
    out, relay = _relay(data, strip=True, piece=len(data))
    assert out == data
    assert relay.stats.invalid_events == 2


def test_usage_of_non_streamed_answers() -> None:
    body = json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}})
    assert usage_of(body.encode()) == (5, 7)
    assert usage_of(b"<html>") == (None, None)
    assert usage_of(b'{"usage": {"prompt_tokens": -1, "completion_tokens": true}}') == (None, None)


def _compact(text: str) -> bytes:
    """A content chunk in the exact compact shape Foundry writes (the relay's scanned path)."""
    body = json.dumps({"choices": [{"delta": {"content": text}, "finish_reason": None,
                                    "index": 0}], "object": "chat.completion.chunk"},
                      separators=(",", ":"))
    return f"data: {body}\n\n".encode()


def test_after_the_first_content_every_shape_is_still_counted_right() -> None:
    relay = StreamRelay(strip_usage=False)
    relay.feed(_compact(" a"), 1.0)  # first content: parsed
    reads = [
        _compact(" b") + _compact(" c"),   # scanned: two content chunks
        _compact(""),                      # scanned: empty content is no token
        _chunk(" d"),                      # another shape (spaces): parsed, content
        _event("not json") + _event({"error": {"message": "boom"}}),  # parsed: two invalid
        _chunk(None, "stop") + _event("[DONE]"),
    ]
    out = b"".join(relay.feed(data, 2.0 + i) for i, data in enumerate(reads))
    assert out == b"".join(reads)
    assert relay.stats.gaps == [0.5, 0.5, 2.0]  # b, c at t=2; d at t=4
    assert relay.stats.invalid_events == 2
    assert relay.stats.done


def test_a_lagging_read_with_many_events_and_the_usage_chunk() -> None:
    relay = StreamRelay(strip_usage=True)
    first = _compact(" a")
    rest = b"".join(_compact(f" {i}") for i in range(50)) + _compact("") + _event("oops") \
        + _chunk(None, "length") + USAGE + _event("[DONE]")
    out = relay.feed(first, 1.0) + relay.feed(rest, 3.0)
    assert out == first + rest.replace(USAGE, b"")
    assert len(relay.stats.gaps) == 50 and relay.stats.gaps[0] == 2.0 / 50
    assert (relay.stats.prompt_tokens, relay.stats.completion_tokens) == (12, 3)
    assert relay.stats.invalid_events == 1 and relay.stats.done
