"""Benchmark: the fleet path next to the single-upstream path, three hosts next to one.

    sudo .venv/bin/python perf/fleet.py [--pairs 200] [--concurrency 12] [--rounds 3]
                                        [--max-tokens 256]

Three network namespaces play three machines, as tests/integration/fleet does:
each runs the real Foundry Local runtime (``stackctl.foundry.serve``, the tiny
model of tests/fixtures/tiny-model) on its own loopback, and in front of it
the edge gateway (gateway/config.edge.yml) on its own address with its own
key. Central gateways of THIS checkout run as real processes
(``python -m foundry_gateway``) in this namespace:

- one single-upstream gateway per host (config: that host's edge, nothing
  else — the path a one-machine stack takes), and
- fleet gateways (config: the three edges + a route), which list each
  host's models, plan and pick the least busy host for every request; three
  alike, so that a gateway of either kind is idle as long between requests.

1. Routing overhead (issue 17: <= 1 ms p50 over the single-upstream path).
   Pairs of requests, one at a time, each on a fresh connection read by the
   raw-socket client (perf/gateway_rawclient.py). With nothing in flight a
   fleet gateway rotates across the hosts, so a pair's single-upstream request
   goes to the host its fleet request is expected on, and the fleet gateway's
   per-upstream counter (scraped between requests, untimed) says where that
   really went: a pair compares one host through both paths; which goes first
   alternates. Shown: TTFT p50/p95 of both, the difference of the p50s, the
   median of the per-pair differences, their ratio, and per host.
2. Spreading (issue 17: least-busy across hosts gives a lower p95 than one
   host). --concurrency streamed chats of --max-tokens at once, --rounds
   times, through host1's single-upstream gateway and through the fleet
   gateway (order alternating per round): wall time, p50/p95 of the
   per-request completion time, the ratio, and how many each host served.

Numbers, not asserts; the machine's load average is printed with them (all of
it shares the machine's CPUs — three Foundry processes, six central and three
edge gateways, the client — and whatever else runs). Needs root (namespaces);
namespaces and processes are removed on exit, Ctrl-C included.
"""

from __future__ import annotations

import _venv  # stdlib only: re-runs this script in the project's venv if needed

_venv.ensure()

import argparse
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This checkout's code first, as in perf/gateway.py (the gateways get the same path); the
# repository root for the tests' namespace and wait helpers.
sys.path[:0] = [str(REPO / "perf"), str(REPO / "gateway"), str(REPO / "exporter"), str(REPO)]

import httpx
from gateway_rawclient import StreamTiming, chat_request, stream_chat
from prometheus_client.parser import text_string_to_metric_families

from foundry_gateway.metrics import PREFIX
from gateway import free_port, loadavg, pct
from tests.plugins.common import wait_for
from tests.plugins.foundry import TINY_MODEL_ALIAS, TINY_MODEL_DIR, TINY_MODEL_ID
from tests.plugins.netns import Host

HOST_NUMBERS = (21, 22, 23)  # 10.213.21-23.x: clear of the fleet test's 1-4, both may run at once
EDGE_PORT, FOUNDRY_PORT = 9180, 5273  # inside each namespace
EDGE_CONFIG = REPO / "gateway" / "config.edge.yml"
MODEL = TINY_MODEL_ID
ROUTE = "fleet-chat"  # the fleet gateway's route: a route lookup is part of the path measured
PAIR_TOKENS = 16      # the overhead pairs time the first token; a short answer keeps them quick
PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
SERVED = f"{PREFIX}_upstream_requests"  # counter family (the parser drops _total)

# Run inside a namespace: start the embedded server there and return once it serves.
_SERVE = """
import sys
from pathlib import Path
from stackctl.foundry import serve
serve(Path(sys.argv[1]), port=int(sys.argv[2]), model_path=sys.argv[3], name=sys.argv[4])
"""


# -- pure parts ------------------------------------------------------------------------

def upstream_yaml(host: Host) -> str:
    return (f"  - {{name: {name(host)}, url: \"http://{host.address}:{EDGE_PORT}\", "
            f"api_key_env: EDGE_{host.n}_KEY, models: [\"{MODEL}\"]}}\n")


def config_yaml(hosts: list[Host], route: bool) -> str:
    """A central gateway's config: these hosts' edges, and the route when asked."""
    text = "upstreams:\n" + "".join(upstream_yaml(h) for h in hosts)
    if route:
        text += f"routing:\n  routes:\n    - {{name: {ROUTE}, models: [\"{MODEL}\"]}}\n"
    return text


def name(host: Host) -> str:
    return f"host{HOST_NUMBERS.index(host.n) + 1}"


def served_counts(metrics_text: str) -> dict[str, int]:
    """Requests answered so far, by upstream name, from a gateway's /metrics."""
    out: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name == SERVED:
            for s in family.samples:
                if s.name == SERVED + "_total":
                    out[s.labels["upstream"]] = out.get(s.labels["upstream"], 0) + int(s.value)
    return out


def next_host(names: list[str], history: list[str]) -> str:
    """Where the fleet gateway sends a request when nothing is in flight: the host
    that answered longest ago (pool.plan's tie rule), the first in order if none has.
    Right from the warm-up's end; not for the very first requests (the pool's turn
    counter starts at its members' default, so host1 answers the first two)."""
    last = {n: i for i, n in enumerate(history)}
    return min(names, key=lambda n: last.get(n, -1))


def ms(values: list[float]) -> tuple[float, float]:
    return pct(values, 0.5) * 1000, pct(values, 0.95) * 1000


# -- the fleet -------------------------------------------------------------------------

@dataclass
class Central:
    """A central gateway process and what reaching it takes."""
    proc: subprocess.Popen
    port: int
    key: str
    model: str  # what its requests ask for: the model, or the fleet's route
    metrics: httpx.Client

    def request(self, max_tokens: int) -> bytes:
        body = {"model": self.model, "messages": PROMPT, "max_tokens": max_tokens, "stream": True,
                "temperature": 0}
        return chat_request("127.0.0.1", self.port, "/v1/chat/completions", body, self.key)

    def stream(self, request: bytes, timeout: float = 60.0) -> StreamTiming:
        return stream_chat("127.0.0.1", self.port, request, timeout)

    def served(self) -> dict[str, int]:
        return served_counts(self.metrics.get("/metrics").raise_for_status().text)


class Fleet:
    def __init__(self, root: Path) -> None:
        tag = str(os.getpid() % 10000)
        self.root = root
        self.hosts = [Host(n, tag) for n in HOST_NUMBERS]
        self.key = secrets.token_urlsafe(24)
        self.edge_keys = {h.n: secrets.token_urlsafe(24) for h in self.hosts}
        self.centrals: list[Central] = []
        self.path = os.pathsep.join(sys.path)  # this checkout first (perf/gateway.py's import)

    def start(self) -> Fleet:
        launchers = []
        for host in self.hosts:  # the Foundry servers start in parallel (each ~5-10 s)
            host.create()
            state = self.root / host.name / "foundry"
            state.mkdir(parents=True)
            launchers.append((host, host.spawn(
                [sys.executable, "-c", _SERVE, str(state), str(FOUNDRY_PORT), str(TINY_MODEL_DIR),
                 TINY_MODEL_ALIAS], self.log(host, "serve"), {"PYTHONPATH": self.path})))
        for host, proc in launchers:
            if proc.wait(180) != 0:
                raise SystemExit(f"Foundry in {host.name} did not start; its log ends:\n"
                                 + self.log(host, "serve").read_text()[-2000:])
        for host in self.hosts:
            host.spawn([sys.executable, "-m", "foundry_gateway", "--config", str(EDGE_CONFIG),
                        "--listen-address", f"{host.address}:{EDGE_PORT}",
                        "--log-level", "WARNING"],
                       self.log(host, "edge"),
                       {"EDGE_API_KEY": self.edge_keys[host.n], "PYTHONPATH": self.path,
                        "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{FOUNDRY_PORT}/catalogs/local",
                        "GATEWAY_UPSTREAM_FOLLOW": "true"})
        for host in self.hosts:
            wait_for(lambda h=host: httpx.get(f"http://{h.address}:{EDGE_PORT}/healthz",
                                              timeout=1).status_code == 200,
                     f"edge gateway in {host.name} (log: {self.log(host, 'edge')})",
                     timeout=30, interval=0.2)
        return self

    def log(self, host: Host, what: str) -> Path:
        return self.root / f"{host.name}-{what}.log"

    def central(self, label: str, hosts: list[Host], route: bool) -> Central:
        config = self.root / f"central-{label}.yml"
        config.write_text(config_yaml(hosts, route), encoding="utf-8")
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if k not in ("GATEWAY_UPSTREAM_URL", "GATEWAY_UPSTREAM_FOLLOW")}  # not the edges'
        env |= {"GATEWAY_API_KEY": self.key, "PYTHONPATH": self.path,
                **{f"EDGE_{n}_KEY": k for n, k in self.edge_keys.items()}}
        # Its own session: Ctrl-C reaches this script alone, which then stops everything in order.
        proc = subprocess.Popen([sys.executable, "-m", "foundry_gateway", "--config", str(config),
                                 "--listen-address", f"127.0.0.1:{port}", "--log-level", "WARNING"],
                                env=env, start_new_session=True)
        c = Central(proc, port, self.key, ROUTE if route else MODEL,
                    httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                                 headers={"Authorization": f"Bearer {self.key}"}))
        self.centrals.append(c)
        wait_for(lambda: proc.poll() is None and c.metrics.get("/healthz").status_code == 200,
                 f"central gateway {label} (config {config})", timeout=20, interval=0.05)
        return c

    def close(self) -> None:
        for c in self.centrals:
            c.proc.terminate()
            c.metrics.close()
        for c in self.centrals:
            try:
                c.proc.wait(10)
            except subprocess.TimeoutExpired:
                c.proc.kill()
        for host in self.hosts:
            host.delete()


# -- 1. routing overhead ---------------------------------------------------------------

class Rotation:
    """A fleet gateway used one request at a time, and where each request went (its /metrics)."""

    def __init__(self, central: Central, names: list[str]) -> None:
        self.central, self.names = central, names
        self.request = central.request(PAIR_TOKENS)
        self.counts, self.history = central.served(), []

    def expected(self) -> str:
        return next_host(self.names, self.history)

    def stream(self) -> tuple[StreamTiming, str]:
        timing = self.central.stream(self.request)
        now = self.central.served()
        went = [n for n in now if now[n] != self.counts.get(n, 0)]
        self.counts = now
        self.history.append(went[0] if len(went) == 1 else "?")
        return timing, self.history[-1]


def overhead(pairs: int, singles: dict[str, Central], fleets: list[Central]) -> None:
    names = list(singles)
    single_req = {n: c.request(PAIR_TOKENS) for n, c in singles.items()}
    rotations = [Rotation(c, names) for c in fleets]

    def single(host: str) -> StreamTiming:
        timing = singles[host].stream(single_req[host])
        singles[host].served()  # as after a fleet request: both kinds of gateway do the same work
        return timing

    for _ in range(3):  # warm every path (model, page cache, the gateways' imports)
        for n, c in singles.items():
            c.stream(single_req[n])
        for r in rotations:
            r.stream()
    pairs_done: list[Pair] = []
    load = loadavg()
    for i in range(pairs):
        # As many fleet gateways as single ones, taken in turn: each gateway of either kind
        # sees a request about every third pair (an idle process answers a bit slower).
        rotation = rotations[i % len(rotations)]
        host = rotation.expected()
        a_first = i // len(rotations) % 2 == 0  # the first of a pair warms the host for the second
        if a_first:
            a = single(host)
        b, went = rotation.stream()
        if not a_first:
            a = single(host)
        pairs_done.append(Pair(host, went == host, a_first, a, b))
    print(f"\n1. routing overhead: {pairs} pairs, one request at a time, fresh connections, "
          f"max_tokens {PAIR_TOKENS}; load {load} before, {loadavg()} after\n"
          f"   (a) single upstream: a gateway whose config is that host's edge alone\n"
          f"   (b) fleet: a gateway with the 3-host config + route {ROUTE!r} (listing, plan, "
          f"least busy); {len(fleets)} alike, taken in turn\n"
          f"   each pair: the same host through (a) and (b), which goes first alternating; "
          f"{sum(p.same_host for p in pairs_done)} of {pairs} fleet requests went to the host "
          f"expected\n")
    print(overhead_table(pairs_done, names))


@dataclass(frozen=True)
class Pair:
    host: str
    same_host: bool  # the fleet request went where the single-upstream one did
    a_first: bool
    a: StreamTiming
    b: StreamTiming

    @property
    def ok(self) -> bool:
        return (self.same_host and self.a.status == self.b.status == 200
                and self.a.ttft is not None and self.b.ttft is not None)

    @property
    def diff_ms(self) -> float:
        return (self.b.ttft - self.a.ttft) * 1000


def overhead_table(pairs: list[Pair], names: list[str]) -> str:
    ok = [p for p in pairs if p.ok]
    lines = [f"{'host':<8}{'pairs':>6}{'(a) TTFT p50':>14}{'p95':>8}{'(b) TTFT p50':>14}{'p95':>8}"
             f"{'b-a p50':>9}{'paired':>8}{'b/a p50':>9}"]
    for label in [*names, "all"]:
        sel = [p for p in ok if label in (p.host, "all")]
        if not sel:
            continue
        a50, a95 = ms([p.a.ttft for p in sel])
        b50, b95 = ms([p.b.ttft for p in sel])
        lines.append(f"{label:<8}{len(sel):>6}{a50:>14.2f}{a95:>8.2f}{b50:>14.2f}{b95:>8.2f}"
                     f"{b50 - a50:>+9.2f}{statistics.median(p.diff_ms for p in sel):>+8.2f}"
                     f"{b50 / a50:>9.3f}")
    by_order = [(first, [p.diff_ms for p in ok if p.a_first == first]) for first in (True, False)]
    lines.append("TTFT in ms (request sent -> first content chunk); paired = median of the "
                 f"per-pair (b - a); {len(pairs) - len(ok)} pairs left out (another host or a "
                 "failed request)\npaired by order: "
                 + ", ".join(f"{'a then b' if first else 'b then a'} {statistics.median(d):+.2f} ms"
                             for first, d in by_order if d)
                 + " (the order effect the alternation cancels); target: b - a <= 1 ms p50")
    return "\n".join(lines)


# -- 2. one host vs three --------------------------------------------------------------

@dataclass(frozen=True)
class Done:
    ok: bool
    seconds: float       # request sent (all at once) -> stream ended
    ttft: float | None   # request sent -> first token: how long the request queued
    tokens: int          # content chunks received (Foundry: one token each)


@dataclass(frozen=True)
class Burst:
    done: list[Done]
    wall: float
    cpu: float  # the machine's CPUs busy during the burst, 0..1 (all of them, not just ours)
    served: dict[str, int]


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def burst(c: Central, request: bytes, n: int) -> Burst:
    """``n`` streams through ``c`` at once."""
    before, ticks = c.served(), cpu_ticks()
    gate = threading.Barrier(n)

    def one(_: int) -> Done:
        gate.wait()
        t0 = time.perf_counter()
        try:
            r = c.stream(request, timeout=300)  # queued behind others: the first byte can be late
        except OSError:
            return Done(False, time.perf_counter() - t0, None, 0)
        return Done(r.status == 200 and r.done and r.content_chunks > 0, time.perf_counter() - t0,
                    r.ttft, r.content_chunks)

    pool = ThreadPoolExecutor(n)
    try:
        start = time.perf_counter()
        done = list(pool.map(one, range(n)))
        wall = time.perf_counter() - start
    finally:  # Ctrl-C: do not wait for the streams here; closing the gateways ends them
        pool.shutdown(wait=False, cancel_futures=True)
    (busy0, total0), (busy1, total1) = ticks, cpu_ticks()
    after = c.served()
    return Burst(done, wall, (busy1 - busy0) / max(1, total1 - total0),
                 {k: after[k] - before.get(k, 0) for k in after})


SPREAD_HEADER = (f"{'round':<7}{'load 1/5/15':<18}{'path':<9}{'ok':>4}{'tok':>5}{'TTFT p95':>10}"
                 f"{'wall s':>8}{'p50 s':>7}{'p95 s':>7}{'CPU':>6}   {'served by host1/2/3':<21}"
                 f"{'p95 3/1':>8}")


def spread_row(label: str, load: str, path: str, bursts: list[Burst], names: list[str],
               one_p95: float | None = None) -> str:
    """One table row over ``bursts``; ``one_p95`` (ms): the one-host p95 to divide by."""
    done = [d for b in bursts for d in b.done]
    p50, p95 = ms([d.seconds for d in done])
    ttfts = [d.ttft for d in done if d.ttft is not None]
    ttft95 = ms(ttfts)[1] if ttfts else float("nan")
    served = "/".join(str(sum(b.served.get(n, 0) for b in bursts)) for n in names)
    ratio = f"{p95 / one_p95:>8.2f}" if one_p95 else ""
    return (f"{label:<7}{load:<18}{path:<9}{sum(d.ok for d in done):>4}"
            f"{statistics.mean(d.tokens for d in done):>5.0f}{ttft95:>10.1f}"
            f"{statistics.mean(b.wall for b in bursts):>8.2f}{p50 / 1000:>7.2f}{p95 / 1000:>7.2f}"
            f"{100 * statistics.mean(b.cpu for b in bursts):>5.0f}%   {served:<21}{ratio}")


def spread(k: int, rounds: int, max_tokens: int, one: Central, fleet: Central,
           names: list[str]) -> None:
    print(f"\n2. {k} streamed chats at once, max_tokens {max_tokens}, {rounds} round(s): host1 "
          f"alone (its single-upstream gateway) vs the fleet gateway (3 hosts, least busy)\n")
    print(SPREAD_HEADER)
    paths = {"1 host": one, "3 hosts": fleet}
    runs: dict[str, list[Burst]] = {"1 host": [], "3 hosts": []}
    for i in range(rounds):
        load = loadavg()
        order = list(paths) if i % 2 == 0 else list(paths)[::-1]  # alternate: drift cancels
        now = {label: burst(paths[label], paths[label].request(max_tokens), k) for label in order}
        one_p95 = ms([d.seconds for d in now["1 host"].done])[1]
        print(spread_row(str(i + 1), load, "1 host", [now["1 host"]], names))
        print(spread_row("", "", "3 hosts", [now["3 hosts"]], names, one_p95))
        for label, b in now.items():
            runs[label].append(b)
    if rounds > 1:
        one_p95 = ms([d.seconds for b in runs["1 host"] for d in b.done])[1]
        print(spread_row("all", loadavg(), "1 host", runs["1 host"], names))
        print(spread_row("", "", "3 hosts", runs["3 hosts"], names, one_p95))
    print("completion times in s (request sent, all at once -> stream ended), TTFT in ms; tok = "
          "tokens per stream (mean); wall = the burst (mean over rounds in 'all'); CPU = the "
          "machine's CPUs busy during the bursts; p95 3/1 = fleet p95 / one-host p95")


# -- wiring ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=200, help="overhead pairs (default %(default)s)")
    ap.add_argument("--concurrency", type=int, default=12,
                    help="streams at once in the spreading test (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="spreading rounds (default %(default)s)")
    ap.add_argument("--max-tokens", type=int, default=256,
                    help="tokens per spreading stream (default %(default)s)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("error: perf/fleet.py makes network namespaces, which needs root — run "
                 f"`sudo {sys.executable} perf/fleet.py`")
    if shutil.which("ip") is None:
        sys.exit("error: the `ip` command (iproute2) is missing — apt-get install iproute2")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # cleanup below runs on kill too
    with tempfile.TemporaryDirectory(prefix="perf-fleet-") as tmp:
        fleet = Fleet(Path(tmp))
        try:
            started = time.monotonic()
            fleet.start()
            names = [name(h) for h in fleet.hosts]
            singles = {name(h): fleet.central(f"single-{name(h)}", [h], False) for h in fleet.hosts}
            routed = [fleet.central(f"fleet-{i}", fleet.hosts, True) for i in range(len(singles))]
            print(f"3 hosts (network namespaces), each the real Foundry Local with {MODEL} behind "
                  f"its edge gateway, up in {time.monotonic() - started:.0f} s. {os.cpu_count()} "
                  "CPUs shared by the 3 Foundry processes, 3 edge and 6 central gateways and this "
                  "client (and whatever else runs): the hosts are not separate machines.")
            overhead(args.pairs, singles, routed)
            spread(args.concurrency, args.rounds, args.max_tokens, singles["host1"], routed[0],
                   names)
            return 0
        except KeyboardInterrupt:
            print("\ninterrupted: removing the namespaces and processes", file=sys.stderr)
            return 130
        finally:
            fleet.close()


if __name__ == "__main__":
    sys.exit(main())
