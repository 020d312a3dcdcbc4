"""A raw-socket streaming chat reader: the benchmark's (and the tests') ground truth.

Client libraries add their own latency (Nagle, delayed ACK on pooled
connections, buffering). This reader opens a FRESH connection with
TCP_NODELAY, sends one request in one write, timestamps every ``recv`` and
uses h11 only to undo the chunked framing of what it already received.

A library of perf/gateway.py and perf/fleet.py (and the gateway tests), not a
command: run as a script it says so (in the project's venv, like the benchmarks).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the third-party imports: a bare Python is re-run in the venv
    import _venv

    _venv.ensure()

import json
import socket
import time
from dataclasses import dataclass

import h11

from foundry_exporter.sse import DONE, SSEDecoder, parse_chunk


@dataclass(frozen=True)
class StreamTiming:
    status: int
    ttft: float | None          # request sent -> first chunk carrying content received
    first_content: float | None  # perf_counter timestamps
    last_content: float | None
    content_chunks: int
    done: bool
    body: bytes

    @property
    def decode_rate(self) -> float | None:
        """Content chunks per second after the first (Foundry sends one token per chunk)."""
        if self.content_chunks < 2 or self.first_content is None or self.last_content is None:
            return None
        span = self.last_content - self.first_content
        return (self.content_chunks - 1) / span if span > 0 else None


def chat_request(host: str, port: int, path: str, body: dict, key: str | None = None) -> bytes:
    payload = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             "Accept: text/event-stream", f"Content-Length: {len(payload)}", "Connection: close"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def stream_chat(host: str, port: int, request: bytes, timeout: float = 60.0) -> StreamTiming:
    conn = h11.Connection(h11.CLIENT)
    decoder = SSEDecoder()
    status, first, last, n, done = 0, None, None, 0, False
    body: list[bytes] = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent = time.perf_counter()
        sock.sendall(request)
        while True:
            data = sock.recv(65536)
            now = time.perf_counter()
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed | h11.EndOfMessage):
                    break
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body.append(bytes(event.data))
                    for payload in decoder.feed(bytes(event.data)):
                        if payload == DONE:
                            done = True
                            continue
                        try:
                            has = parse_chunk(payload).has_content
                        except ValueError:
                            continue
                        if has:
                            n += 1
                            first = first if first is not None else now
                            last = now
            if not data or event is not h11.NEED_DATA:
                break
    return StreamTiming(status, None if first is None else first - sent, first, last, n, done,
                        b"".join(body))


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(
        prog="perf/gateway_rawclient.py",
        description="The raw-socket streaming chat reader that perf/gateway.py and perf/fleet.py "
                    "import; not a benchmark itself: run `.venv/bin/python perf/gateway.py` or "
                    "`sudo .venv/bin/python perf/fleet.py`.").parse_args()
