"""SSE decoding and chunk interpretation (pure)."""

from __future__ import annotations

import pytest

from foundry_exporter.durations import format_duration, parse_duration
from foundry_exporter.sse import SSEDecoder, parse_chunk


def test_events_split_across_reads_and_crlf() -> None:
    d = SSEDecoder()
    assert d.feed(b'data: {"a"') == []
    assert d.feed(b': 1}\n\ndata: [DO') == ['{"a": 1}']
    assert d.feed(b"NE]\r\n\r\n: comment\n\n") == ["[DONE]"]


def test_multi_line_data_is_joined() -> None:
    assert SSEDecoder().feed(b"event: x\ndata: a\ndata: b\n\n") == ["a\nb"]


def test_chunk_content_finish_and_usage() -> None:
    c = parse_chunk('{"choices":[{"delta":{"content":"hi"},"finish_reason":null}]}')
    assert (c.has_content, c.finished, c.completion_tokens) == (True, False, None)
    c = parse_chunk('{"choices":[{"delta":{"role":"assistant","content":""}}]}')
    assert c.has_content is False  # a role-only first chunk is not the first token
    c = parse_chunk('{"choices":[],"usage":{"completion_tokens":7}}')
    assert (c.finished, c.completion_tokens) == (False, 7)


@pytest.mark.parametrize("bad", ["[1]", '{"error": {"message": "boom"}}', "nope",
                                 '{"usage": {"completion_tokens": "7"}}'])
def test_bad_chunks_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_chunk(bad)


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("30s", 30), ("2m", 120),
                                               ("1h", 3600), (5, 5.0), ("1.5s", 1.5)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["0s", -1, "3x", True, None, "s"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)
