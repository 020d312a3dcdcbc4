"""Benchmark: the exporter next to its baselines, side by side in one run.

    .venv/bin/python perf/exporter.py [--runs N] [--foundry-url URL --model ID]

1. Scrape latency p50/p99 over HTTP with 1 and 20 targets, against a bare
   prometheus_client exposition (start_http_server) of the same series
   (ratio target <= 1.5).
2. TTFT accuracy: the exporter's canary vs a raw-socket client on the same
   Foundry Local server (median error, target <= 2 ms; also the keep-alive x
   TCP_NODELAY matrix that shows where the old ~40 ms came from), and vs
   injected first-token delays of 50/200/1000 ms on the fault server (<= 2 %).
3. Exporter RSS and CPU per probe cycle with 20 targets (a real process).

Without --foundry-url it starts the embedded Foundry Local server with the tiny
test model. Numbers, not asserts: they depend on the machine.
"""

from __future__ import annotations

import _venv  # stdlib only: re-runs this script in the project's venv if needed

_venv.ensure()

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx2 as httpx  # the exporter's client library (exporter/foundry_exporter/httpio.py)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from foundry_exporter.config import Canary, Module, Target
from foundry_exporter.httpio import make_client
from foundry_exporter.metrics import BY_NAME, LATENCY_BUCKETS
from foundry_exporter.probes import ProbeContext, run_probe
from foundry_exporter.probes.chat import PROMPT
from foundry_exporter.results import ChatStats, ProbeResult
from foundry_exporter.state import Store, fold, initial_state, tick
from foundry_exporter.web import make_app, serve

REPO = Path(__file__).resolve().parents[1]
# Measured with the harness the tests use (fault server, tiny-model server): importable
# from a fresh clone however the script is started.
sys.path.insert(0, str(REPO))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# -- 1. scrape latency -------------------------------------------------------

def _snapshot(n: int):
    targets = tuple(Target(f"t{i}", f"http://h{i}:1", Module("foundry", ("models", "loaded", "chat")))
                    for i in range(n))
    s = initial_state(targets)
    for t in targets:
        chat = ChatStats("m:1", 0.02, 0.3, 0.28, 8)
        s = fold(s, (ProbeResult(t.name, "models", True, 0.01, 1.7e9, models=("m:1", "x:1")),
                     ProbeResult(t.name, "loaded", True, 0.01, 1.7e9, models=("m:1",)),
                     ProbeResult(t.name, "chat", True, 0.3, 1.7e9, chat=chat)), 1.0)
    return tick(s, 1.0, 1.7e9)


def _bare_registry(exposition: str) -> CollectorRegistry:
    """The same families and label sets with plain prometheus_client instruments."""
    reg = CollectorRegistry()
    for fam in text_string_to_metric_families(exposition):
        spec = BY_NAME.get(fam.name)
        if spec is None or spec.type == "info":
            continue
        kind = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[spec.type]
        kwargs = {"buckets": LATENCY_BUCKETS} if spec.type == "histogram" else {}
        metric = kind(spec.name, spec.help, list(spec.labels), registry=reg, **kwargs)
        for sample in fam.samples:
            if sample.name.endswith(("_bucket", "_sum", "_created")):
                continue
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            child = metric.labels(**labels) if spec.labels else metric
            if spec.type == "histogram":
                child.observe(0.1)
            elif spec.type == "counter":
                child.inc(sample.value)
            else:
                child.set(sample.value)
    return reg


def _time_scrapes(url: str, runs: int) -> list[float]:
    out = []
    with httpx.Client() as client:
        client.get(url)
        for _ in range(runs):
            t0 = time.perf_counter()
            client.get(url).raise_for_status()
            out.append(time.perf_counter() - t0)
    return out


def bench_scrape(runs: int) -> None:
    print("1. scrape latency over HTTP (ms)        p50     p99   series   bare p50  bare p99  ratio p50")
    for n in (1, 20):
        store = Store(_snapshot(n))
        from foundry_exporter.app import build_registry

        ours = serve(make_app(build_registry(store), lambda: (True, ""), None),
                     f"127.0.0.1:{_free_port()}")
        threading.Thread(target=ours.serve_forever, daemon=True).start()
        ours_url = f"http://127.0.0.1:{ours.server_address[1]}/metrics"
        text = httpx.get(ours_url).text
        series = sum(1 for ln in text.splitlines() if ln and not ln.startswith("#"))
        bare_port = _free_port()
        bare_server, _ = start_http_server(bare_port, "127.0.0.1", registry=_bare_registry(text))
        a = _time_scrapes(ours_url, runs)
        b = _time_scrapes(f"http://127.0.0.1:{bare_port}/metrics", runs)
        print(f"   {n:2d} target(s)                     {_pct(a, .5)*1e3:6.2f}  {_pct(a, .99)*1e3:6.2f}"
              f"  {series:6d}   {_pct(b, .5)*1e3:7.2f}  {_pct(b, .99)*1e3:7.2f}  {_pct(a, .5)/_pct(b, .5):8.2f}")
        ours.shutdown()
        bare_server.shutdown()


# -- 2. TTFT accuracy --------------------------------------------------------

def _raw_request(url: str, model: str) -> tuple[tuple[str, int], bytes]:
    u = urlsplit(url)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": PROMPT}],
                       "stream": True, "stream_options": {"include_usage": True},
                       "temperature": 0, "max_tokens": 8}).encode()
    request = (f"POST {u.path}/v1/chat/completions HTTP/1.1\r\nHost: {u.netloc}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    return (u.hostname or "127.0.0.1", u.port or 80), request


def raw_socket_ttft(address: tuple[str, int], request: bytes) -> float:
    """Truth: fresh blocking socket, clock started right before sendall, first content delta.

    Independent of the exporter's code: its own (crude) line scan over raw bytes.
    """
    with socket.create_connection(address) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0, buf = time.perf_counter(), b""
        s.sendall(request)
        while True:
            chunk = s.recv(65536)
            now = time.perf_counter()
            if not chunk:
                raise RuntimeError("stream ended before any content")
            buf += chunk
            for line in buf.split(b"\n"):
                if line.startswith(b"data: {") and any(
                        (c.get("delta") or {}).get("content")
                        for c in json.loads(line[6:]).get("choices", [])):
                    return now - t0


def raw_socket_ttfts(url: str, model: str, runs: int) -> list[float]:
    address, request = _raw_request(url, model)
    return [raw_socket_ttft(address, request) for _ in range(runs)]


def paired_ttfts(url: str, model: str, runs: int, *, keepalive: bool = False,
                 nodelay: bool = True) -> tuple[list[float], list[float]]:
    """(raw socket, exporter canary) TTFTs, alternating one of each so load drift cancels."""
    target = Target("t", url, Module("foundry", ("chat",), 30.0, canary=Canary(model=model)))
    address, request = _raw_request(url, model)

    async def go() -> tuple[list[float], list[float]]:
        opts = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)] if nodelay else None
        transport = httpx.AsyncHTTPTransport(socket_options=opts, limits=httpx.Limits(
            max_keepalive_connections=None if keepalive else 0))
        raw, ours = [], []
        async with make_client(transport) as client:
            ctx = ProbeContext(client)
            for _ in range(runs):
                raw.append(raw_socket_ttft(address, request))  # blocks the loop: nothing else runs
                result = await run_probe(ctx, target, "chat")
                if result.chat is None:
                    raise RuntimeError(f"canary failed: {result.reason} {result.detail}")
                ours.append(result.chat.ttft)
        return raw, ours

    return asyncio.run(go())


def exporter_ttfts(url: str, model: str, runs: int) -> list[float]:
    return paired_ttfts(url, model, runs)[1]


def _errors(raw: list[float], ours: list[float]) -> tuple[float, float, float]:
    """(median raw, median exporter, median of paired |exporter - raw|) in ms."""
    paired = statistics.median(abs(o - r) for r, o in zip(raw, ours, strict=True))
    return statistics.median(raw) * 1e3, statistics.median(ours) * 1e3, paired * 1e3


def bench_ttft(url: str, model: str, runs: int) -> None:
    print(f"2a. TTFT vs raw socket on Foundry Local ({url}), {runs} alternating pairs (ms)")
    print("    client variant                         raw p50  exporter p50  median |error|")
    for keep, nodelay, label in ((False, True, "exporter (fresh connection, NODELAY)"),
                                 (False, False, "fresh connection, no NODELAY"),
                                 (True, True, "keep-alive, NODELAY"),
                                 (True, False, "keep-alive, no NODELAY (plain httpx)")):
        raw, ours, err = _errors(*paired_ttfts(url, model, runs, keepalive=keep, nodelay=nodelay))
        print(f"    {label:38s}{raw:8.2f}  {ours:12.2f}  {err:14.2f}")


class _FaultProcess:
    """The fault server in its own process, so it does not share our GIL."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.integration.exporter.faultserver"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=REPO)
        self.port = int(self.proc.stdout.readline())

    def url(self, scenario: str) -> str:
        return f"http://127.0.0.1:{self.port}/{scenario}"

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def bench_injected(runs: int) -> None:
    from tests.integration.exporter.faultserver import MODEL

    server = _FaultProcess()
    print("2b. TTFT vs injected first-token delay on the fault server (ms; the server's own "
          "sleep overshoot shows in the raw column)")
    try:
        for delay in (50, 200, 1000):
            raw, ours, err = _errors(*paired_ttfts(server.url(f"delay/{delay}"), MODEL, runs))
            print(f"    injected {delay:5d}   exporter {ours:8.2f} ({abs(ours - delay)/delay*100:4.2f} %)"
                  f"   raw socket {raw:8.2f} ({abs(raw - delay)/delay*100:4.2f} %)"
                  f"   median |exporter - raw| {err:5.2f}")
    finally:
        server.stop()


# -- 3. RSS and CPU ----------------------------------------------------------

def _proc_cpu_rss(pid: int) -> tuple[float, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    rss = next(int(ln.split()[1]) for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
               if ln.startswith("VmRSS:"))
    return ticks / 100.0, rss * 1024


def _cycles(url: str) -> float:
    text = httpx.get(url).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "foundry_probes_total" and s.labels["probe"] == "models")


def bench_resources(seconds: float) -> None:
    server = _FaultProcess()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "c.yml"
        config.write_text("targets:\n" + "".join(
            f"  - {{name: t{i}, kind: foundry, url: '{server.url('ok')}', interval: 2s, timeout: 2s}}\n"
            for i in range(20)))
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "foundry_exporter", "--config", str(config),
                                 "--listen-address", f"127.0.0.1:{port}", "--log-level", "WARNING"])
        url = f"http://127.0.0.1:{port}/metrics"
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if _cycles(url) >= 20:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("exporter did not complete a round within 20 s")
                time.sleep(0.2)
            cpu0, _ = _proc_cpu_rss(proc.pid)
            c0 = _cycles(url)
            time.sleep(seconds)
            cpu1, rss = _proc_cpu_rss(proc.pid)
            c1 = _cycles(url)
        finally:
            proc.terminate()
            proc.wait(10)
            server.stop()
    per_target = (cpu1 - cpu0) / max(1.0, c1 - c0)
    print(f"3. 20 targets, 2 s interval, {seconds:.0f} s window: RSS {rss / 2**20:.1f} MiB, "
          f"{c1 - c0:.0f} target cycles (models+loaded+chat each), "
          f"CPU {per_target*1e3:.2f} ms per target cycle = {per_target*20*1e3:.1f} ms per 20-target round")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--foundry-url", help="Foundry root (+ /catalogs/local); default: start one")
    parser.add_argument("--model", help="model id for --foundry-url")
    args = parser.parse_args()
    # As in the exporter process (app.run): the fault server thread shares this
    # process, and the default 5 ms GIL switch interval would skew timestamps.
    sys.setswitchinterval(0.001)
    bench_scrape(args.scrapes)
    if args.foundry_url:
        bench_ttft(args.foundry_url, args.model, args.runs)
    else:
        from stackctl.foundry import stop
        from tests.plugins.foundry import TINY_MODEL_ID, serve_tiny_model

        with tempfile.TemporaryDirectory() as state:
            st = serve_tiny_model(Path(state))
            try:
                bench_ttft(f"{st.root_url}/catalogs/local", TINY_MODEL_ID, args.runs)
            finally:
                stop(Path(state))
    bench_injected(max(5, args.runs // 3))
    bench_resources(10.0)


if __name__ == "__main__":
    main()
