"""One streamed chat completion, timed: the only HTTP in `invoke bench`.

The request is the same everywhere (temperature 0, ``stream: true``,
``stream_options.include_usage``); the stream is read with the exporter's SSE
parser, so TTFT means the same here as on the dashboards: the first chunk whose
delta carries content, reasoning or a tool call. Output tokens come from the
final ``usage`` chunk, else (a proxy that drops usage) from the number of content
chunks. Every failure becomes ``Sample.error`` — never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from foundry_exporter.sse import DONE, SSEDecoder, parse_chunk
from stackctl.bench.stats import Sample


@dataclass(frozen=True)
class Target:
    via: str              # "direct" | "openwebui"
    url: str              # full chat completions URL
    headers: dict[str, str]


def request_body(model: str, prompt: str, max_tokens: int) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}],
            "temperature": 0, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}}


def measure(http: httpx.Client, target: Target, model: str, prompt_id: str, text: str,
            max_tokens: int, round_no: int, *, timeout: float = 120.0,
            clock: Callable[[], float] = time.perf_counter) -> Sample:
    base = {"model": model, "via": target.via, "prompt_id": prompt_id, "round": round_no}
    t0 = clock()
    ttft = None
    content_chunks = 0
    usage_tokens = None
    try:
        with http.stream("POST", target.url, headers=target.headers, timeout=timeout,
                         json=request_body(model, text, max_tokens)) as resp:
            if resp.status_code != 200:
                resp.read()
                return Sample(**base, error=f"HTTP {resp.status_code}: {_message(resp)}")
            decoder = SSEDecoder()
            done = False
            for raw in resp.iter_bytes():
                for data in decoder.feed(raw):
                    if data == DONE:
                        done = True
                        break
                    try:
                        ch = parse_chunk(data)
                    except ValueError as err:
                        if str(err).startswith("error event: "):
                            return Sample(**base, error=f"stream {_short(err)}")
                        continue  # not a chunk (keep-alive, garbage): not content
                    if ch.has_content:
                        content_chunks += 1
                        if ttft is None:
                            ttft = clock() - t0
                    if ch.completion_tokens is not None:
                        usage_tokens = ch.completion_tokens
                if done:
                    break
    except httpx.HTTPError as exc:
        return Sample(**base, error=f"{type(exc).__name__}: {_short(exc)}")
    latency = clock() - t0
    if ttft is None:
        return Sample(**base, latency_s=latency, error="the answer had no content")
    tokens = usage_tokens if usage_tokens is not None else content_chunks
    return Sample(**base, latency_s=latency, ttft_s=ttft, output_tokens=tokens)


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return _short(resp.text or resp.reason_phrase)
    if isinstance(body, dict):
        err = body.get("error") or body.get("detail") or body
        if isinstance(err, dict):
            err = err.get("message") or err
        return _short(err)
    return _short(body)


def _short(obj: object) -> str:
    text = str(obj).strip().replace("\n", " ")
    return text[:200] or "no detail"
