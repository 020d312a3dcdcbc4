"""Benchmark: the exporter next to its baselines, side by side in one run.

    PYTHONPATH=. .venv/bin/python bench/exporter.py [--runs N] [--foundry-url URL --model ID]

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

import httpx
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

def raw_socket_ttfts(url: str, model: str, runs: int) -> list[float]:
    """Truth: fresh socket, clock started right before sendall, first content delta."""
    u = urlsplit(url)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": PROMPT}],
                       "stream": True, "stream_options": {"include_usage": True},
                       "temperature": 0, "max_tokens": 8}).encode()
    request = (f"POST {u.path}/v1/chat/completions HTTP/1.1\r\nHost: {u.netloc}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    out = []
    for _ in range(runs):
        with socket.create_connection((u.hostname, u.port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t0, buf, ttft = time.perf_counter(), b"", None
            s.sendall(request)
            while ttft is None:
                chunk = s.recv(65536)
                now = time.perf_counter()
                if not chunk:
                    raise RuntimeError("stream ended before any content")
                buf += chunk
                for line in buf.split(b"\n"):
                    if line.startswith(b"data: {"):
                        with_content = [c for c in json.loads(line[6:]).get("choices", [])
                                        if (c.get("delta") or {}).get("content")]
                        if with_content:
                            ttft = now - t0
                            break
            out.append(ttft)
    return out


def exporter_ttfts(url: str, model: str, runs: int, *, keepalive: bool = False,
                   nodelay: bool = True) -> list[float]:
    """The exporter's own canary, ``runs`` times on one client (as the loop does)."""
    target = Target("t", url, Module("foundry", ("chat",), 30.0, canary=Canary(model=model)))

    async def go() -> list[float]:
        opts = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)] if nodelay else None
        transport = httpx.AsyncHTTPTransport(socket_options=opts, limits=httpx.Limits(
            max_keepalive_connections=None if keepalive else 0))
        async with make_client(transport) as client:
            ctx = ProbeContext(client)
            out = []
            for _ in range(runs):
                result = await run_probe(ctx, target, "chat")
                if result.chat is None:
                    raise RuntimeError(f"canary failed: {result.reason} {result.detail}")
                out.append(result.chat.ttft)
            return out

    return asyncio.run(go())


def bench_ttft(url: str, model: str, runs: int) -> None:
    raw = statistics.median(raw_socket_ttfts(url, model, runs))
    print(f"2a. TTFT vs raw socket on Foundry Local ({url}), median of {runs} (ms)")
    print(f"    raw socket truth                      {raw*1e3:7.2f}")
    for keep, nodelay, label in ((False, True, "exporter (fresh connection, NODELAY)"),
                                 (False, False, "fresh connection, no NODELAY"),
                                 (True, True, "keep-alive, NODELAY"),
                                 (True, False, "keep-alive, no NODELAY (plain httpx)")):
        m = statistics.median(exporter_ttfts(url, model, runs, keepalive=keep, nodelay=nodelay))
        print(f"    {label:38s}{m*1e3:7.2f}   error {abs(m - raw)*1e3:6.2f}")


def bench_injected(runs: int) -> None:
    from tests.integration.exporter.faultserver import MODEL, FaultServer

    server = FaultServer().start()
    print("2b. TTFT vs injected first-token delay on the fault server (ms; the server's own "
          "sleep overshoot shows in the raw column)")
    try:
        for delay in (50, 200, 1000):
            url = server.url(f"delay/{delay}")
            m = statistics.median(exporter_ttfts(url, MODEL, runs))
            r = statistics.median(raw_socket_ttfts(url, MODEL, runs))
            print(f"    injected {delay:5d}   exporter {m*1e3:8.2f} ({abs(m*1e3 - delay)/delay*100:4.2f} %)"
                  f"   raw socket {r*1e3:8.2f} ({abs(r*1e3 - delay)/delay*100:4.2f} %)"
                  f"   exporter - raw {(m - r)*1e3:5.2f}")
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
    from tests.integration.exporter.faultserver import FaultServer

    server = FaultServer().start()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "c.yml"
        config.write_text("targets:\n" + "".join(
            f"  - {{name: t{i}, kind: foundry, url: '{server.url('ok')}', interval: 1s, timeout: 1s}}\n"
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
    print(f"3. 20 targets, 1 s interval, {seconds:.0f} s window: RSS {rss / 2**20:.1f} MiB, "
          f"{c1 - c0:.0f} target cycles (models+loaded+chat each), "
          f"CPU {per_target*1e3:.2f} ms per target cycle = {per_target*20*1e3:.1f} ms per 20-target round")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--foundry-url", help="Foundry root (+ /catalogs/local); default: start one")
    parser.add_argument("--model", help="model id for --foundry-url")
    args = parser.parse_args()
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
    bench_injected(max(3, args.runs // 3))
    bench_resources(10.0)


if __name__ == "__main__":
    main()
