"""Benchmark: the gateway next to direct-to-Foundry, side by side in one run.

    .venv/bin/python perf/gateway.py [--runs 200] [--rounds 3] [--max-tokens 128]
                                     [--concurrency 30] [--soak 2000]
                                     [--foundry-url URL --model ID]

Without --foundry-url it starts the stack's embedded Foundry Local (the real
runtime, ``stackctl.foundry.serve``) serving the tiny model from
tests/fixtures/tiny-model. The gateway of THIS checkout runs as a real
process (``python -m foundry_gateway``). In each round, requests alternate
direct / gateway, each on a fresh connection read by a raw socket
(perf/gateway_rawclient.py); a row per round and one over all rounds show
TTFT p50/p95, decode rate and the ratios the issue asks for (TTFT overhead
<= 1 ms p50, decode >= 98 %), plus the median of the per-pair TTFT
differences (each gateway request minus the direct one just before it: load
that drifts during the run cancels out) and the machine's load average (the
two paths share the CPU with Foundry and with whatever else runs). Then:
--concurrency streams at once through the gateway (none may be lost), and the
gateway's RSS over --soak requests. Numbers, not asserts.
"""

from __future__ import annotations

import _venv  # stdlib only: re-runs this script in the project's venv if needed

_venv.ensure()

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
# This checkout's code first (gateway, exporter helpers, stackctl), whatever the
# venv has installed in editable mode; the gateway process gets the same path.
_CODE = [str(REPO / "gateway"), str(REPO / "exporter"), str(REPO)]
sys.path[:0] = [str(REPO / "perf"), *_CODE]
from gateway_rawclient import StreamTiming, chat_request, stream_chat

TINY_MODEL = REPO / "tests" / "fixtures" / "tiny-model"
PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def start_foundry(state_dir: Path) -> tuple[str, str]:
    try:
        import foundry_local_sdk  # noqa: F401 -- the embedded server needs it

        from stackctl.foundry import serve
    except ImportError as exc:
        raise SystemExit(f"cannot start the embedded Foundry ({exc}); run ./stack once to make "
                         ".venv (it installs the foundry extra), or pass --foundry-url URL "
                         "--model ID") from None

    st = serve(state_dir, port=free_port(), model_path=str(TINY_MODEL), name="tiny-chat")
    return st.root_url + "/catalogs/local", st.model_id


def start_gateway(upstream: str, workdir: Path, key: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = workdir / "gateway.yml"
    config.write_text(f"upstreams:\n  - name: foundry\n    url: {upstream}\n", encoding="utf-8")
    path = os.pathsep.join([*_CODE, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "GATEWAY_API_KEY": key, "PYTHONPATH": path}
    proc = subprocess.Popen([sys.executable, "-m", "foundry_gateway", "--config", str(config),
                             "--listen-address", f"127.0.0.1:{port}", "--log-level", "WARNING"],
                            env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return proc, port
        except OSError:
            time.sleep(0.05)  # polling a condition (the port answering) with a deadline
    proc.kill()
    raise SystemExit("the gateway did not answer /healthz within 20 s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads, dead ones included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def schedstat(pid: int) -> tuple[float, float, int]:
    """(CPU seconds, seconds waiting on a run queue, times scheduled) of the event-loop thread."""
    try:
        cpu, wait, slices = Path(f"/proc/{pid}/schedstat").read_text().split()
    except (OSError, ValueError):
        return 0.0, 0.0, 0
    return int(cpu) / 1e9, int(wait) / 1e9, int(slices)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def summary(name: str, runs: list[StreamTiming]) -> dict:
    ttfts = [r.ttft * 1000 for r in runs if r.ttft is not None]
    rates = [r.decode_rate for r in runs if r.decode_rate]
    return {"name": name, "n": len(runs), "ttft_p50": pct(ttfts, 0.5), "ttft_p95": pct(ttfts, 0.95),
            "rate": statistics.median(rates), "ok": sum(r.status == 200 and r.done for r in runs)}


def paired_ttft_ms(d_runs: list[StreamTiming], g_runs: list[StreamTiming]) -> float:
    diffs = [(g.ttft - d.ttft) * 1000 for d, g in zip(d_runs, g_runs, strict=True)
             if g.ttft is not None and d.ttft is not None]
    return statistics.median(diffs)


HEADER = (f"{'round':<7}{'load 1/5/15':<17}{'path':<9}{'ok':>5}{'TTFT p50':>10}{'p95':>8}"
          f"{'tok/s':>8}   {'TTFT +p50':>9}{'+p95':>8}{'paired':>8}{'decode':>8}")


def rows(label: str, load: str, d_runs: list[StreamTiming], g_runs: list[StreamTiming]) -> str:
    d, g = summary("direct", d_runs), summary("gateway", g_runs)
    out = []
    for s in (d, g):
        out.append(f"{label if s is d else '':<7}{load if s is d else '':<17}{s['name']:<9}"
                   f"{s['ok']:>5}{s['ttft_p50']:>10.2f}{s['ttft_p95']:>8.2f}{s['rate']:>8.0f}")
    out[1] += (f"   {g['ttft_p50'] - d['ttft_p50']:>+9.2f}{g['ttft_p95'] - d['ttft_p95']:>+8.2f}"
               f"{paired_ttft_ms(d_runs, g_runs):>+8.2f}{100 * g['rate'] / d['rate']:>7.1f}%")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200,
                    help="streams per side and round (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="(default %(default)s)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--concurrency", type=int, default=30)
    ap.add_argument("--soak", type=int, default=2000, help="requests for the RSS check (0: skip)")
    ap.add_argument("--foundry-url", help="Foundry root (+ /catalogs/local); default: start one")
    ap.add_argument("--model", help="model id (with --foundry-url)")
    args = ap.parse_args(argv)

    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="perf-gateway-") as tmp:
        work = Path(tmp)
        started = args.foundry_url is None
        upstream, model = (args.foundry_url.rstrip("/"), args.model) if not started \
            else start_foundry(work / "foundry")
        gw, gw_port = start_gateway(upstream, work, key)
        try:
            return run(args, upstream, model, gw, gw_port, key)
        finally:
            gw.terminate()
            gw.wait(10)
            if started:
                from stackctl.foundry import stop

                stop(work / "foundry")


def run(args, upstream: str, model: str, gw: subprocess.Popen, gw_port: int, key: str) -> int:
    up = urlsplit(upstream)
    body = {"model": model, "messages": PROMPT, "max_tokens": args.max_tokens, "stream": True,
            "temperature": 0}
    direct_req = chat_request(up.hostname, up.port, up.path + "/v1/chat/completions", body)
    gw_req = chat_request("127.0.0.1", gw_port, "/v1/chat/completions", body, key)

    def direct() -> StreamTiming:
        return stream_chat(up.hostname, up.port, direct_req)

    def gateway() -> StreamTiming:
        return stream_chat("127.0.0.1", gw_port, gw_req)

    for _ in range(10):  # warm both paths (model, page cache, the gateway's imports)
        direct(), gateway()
    print(f"model {model}, {args.rounds} rounds x {args.runs} streams per side, max_tokens "
          f"{args.max_tokens}; fresh connection per request, raw-socket reader, alternating; "
          f"{os.cpu_count()} CPUs\nTTFT in ms; decode = gateway tok/s / direct tok/s; paired = "
          "median of (gateway - direct just before)\n")
    print(HEADER)
    all_d, all_g = [], []
    cpu0, sched0 = cpu_seconds(gw.pid), schedstat(gw.pid)
    for i in range(args.rounds):
        before = loadavg()
        d_runs, g_runs = [], []
        for _ in range(args.runs):
            d_runs.append(direct())
            g_runs.append(gateway())
        all_d += d_runs
        all_g += g_runs
        print(rows(str(i + 1), before, d_runs, g_runs))
    gw_cpu = (cpu_seconds(gw.pid) - cpu0) / len(all_g) * 1000
    _, wait, slices = (b - a for a, b in zip(sched0, schedstat(gw.pid), strict=True))
    tokens = statistics.mean(r.content_chunks for r in all_g) or 1
    if args.rounds > 1:
        print(rows("all", loadavg(), all_d, all_g))
    print(f"\ntargets: TTFT +p50 <= 1 ms, decode >= 98 %. Gateway CPU per streamed request: "
          f"{gw_cpu:.2f} ms ({1000 * gw_cpu / tokens:.1f} us per token); its event loop "
          f"was scheduled {slices / len(all_g):.0f} times per request and waited "
          f"{1000 * wait / len(all_g):.2f} ms per request for a CPU (run queue)")

    if args.concurrency:
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda _: gateway(), range(args.concurrency)))
        lost = sum(not (r.status == 200 and r.done and r.content_chunks > 0) for r in results)
        print(f"\n{args.concurrency} concurrent streams through the gateway: "
              f"{args.concurrency - lost} complete, {lost} lost")

    if args.soak:
        small = chat_request("127.0.0.1", gw_port, "/v1/chat/completions",
                             {**body, "max_tokens": 4}, key)
        marks = []
        for i in range(args.soak):
            stream_chat("127.0.0.1", gw_port, small)
            if i % max(1, args.soak // 10) == 0 or i == args.soak - 1:
                marks.append((i + 1, rss_mb(gw.pid)))
        print(f"\ngateway RSS over {args.soak} requests (MB): "
              + ", ".join(f"{n}:{mb:.1f}" for n, mb in marks))
        half = marks[len(marks) // 2][1]
        print(f"growth over the second half: {marks[-1][1] - half:+.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
