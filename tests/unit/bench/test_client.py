"""One timed streamed request, with an injected transport and clock."""

from __future__ import annotations

import itertools
import json

import httpx

from stackctl.bench.client import Target, measure, request_body

T = Target("direct", "http://fake/v1/chat/completions", {})


def sse(*events) -> bytes:
    out = []
    for e in events:
        out.append("data: [DONE]" if e == "DONE" else "data: " + json.dumps(e))
    return ("\n\n".join(out) + "\n\n").encode()


def chunk(text=None, usage=None):
    d = {"choices": [{"delta": {"content": text} if text is not None else {}}]}
    if usage is not None:
        d = {"choices": [], "usage": usage}
    return d


def client(handler):
    return httpx.Client(transport=httpx.MockTransport(handler))


def ticking():
    c = itertools.count()
    return lambda: float(next(c))  # each call one "second" later


def test_request_is_deterministic_streaming_with_usage():
    body = request_body("m", "hi", 8)
    assert body["temperature"] == 0 and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True} and body["max_tokens"] == 8


def test_ttft_is_the_first_chunk_with_content_and_tokens_come_from_usage():
    seen = {}

    def handler(req):
        seen["body"] = json.loads(req.content)
        return httpx.Response(200, content=sse(chunk(""), chunk("Hel"), chunk("lo"),
                                               chunk(usage={"completion_tokens": 7}), "DONE"))

    s = measure(client(handler), T, "m", "p", "hi", 8, 1, clock=ticking())
    # clock: t0=0; first content chunk → 1; end → 2
    assert (s.ttft_s, s.latency_s, s.output_tokens, s.error) == (1.0, 2.0, 7, None)
    assert seen["body"]["model"] == "m"


def test_without_usage_content_chunks_are_counted():
    h = lambda req: httpx.Response(200, content=sse(chunk("a"), chunk("b"), chunk("c"), "DONE"))  # noqa: E731
    assert measure(client(h), T, "m", "p", "hi", 8, 1, clock=ticking()).output_tokens == 3


def test_http_error_is_a_sample_error_with_the_servers_message():
    h = lambda req: httpx.Response(400, json={"error": {"message": "Model not loaded"}})  # noqa: E731
    s = measure(client(h), T, "m", "p", "hi", 8, 1, clock=ticking())
    assert s.error == "HTTP 400: Model not loaded" and not s.ok


def test_connection_error_and_empty_answer_are_sample_errors():
    def refuse(req):
        raise httpx.ConnectError("connection refused")

    assert measure(client(refuse), T, "m", "p", "hi", 8, 1).error == "ConnectError: connection refused"
    empty = lambda req: httpx.Response(200, content=sse(chunk(""), "DONE"))  # noqa: E731
    assert measure(client(empty), T, "m", "p", "hi", 8, 1).error == "the answer had no content"


def test_ttft_counts_what_the_exporter_counts_and_skips_what_is_no_chunk():
    """One definition of TTFT (the exporter's parser): a reasoning delta is the first token;
    keep-alives and garbage are not content; an error event is a sample error."""
    reasoning = {"choices": [{"delta": {"reasoning_content": "hmm"}}]}
    body = (b": keep-alive\n\ndata: not json\n\n" + sse(reasoning, chunk("a"), "DONE"))
    s = measure(client(lambda req: httpx.Response(200, content=body)), T, "m", "p", "hi", 8, 1,
                clock=ticking())
    assert (s.ttft_s, s.output_tokens, s.error) == (1.0, 2, None)
    err = sse({"error": {"message": "boom"}})
    e = measure(client(lambda req: httpx.Response(200, content=err)), T, "m", "p", "hi", 8, 1)
    assert e.error.startswith("stream error event: ") and "boom" in e.error
