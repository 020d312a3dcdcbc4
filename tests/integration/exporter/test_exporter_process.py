"""The exporter as users run it: a real process, scraped over HTTP, stopped by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.exporter.faultserver import MODEL, FaultServer
from tests.plugins.common import free_ports, wait_for

FAULTS = ("hang", "slowbody", "status/500", "ssecut", "huge", "delay/500")


STUCK = "hang/99"  # a target whose probe stays in flight for the whole test (timeout 30 s)


def _config(server: FaultServer, refused_port: int) -> str:
    lines = ["defaults: {interval: 2s, timeout: 1s}", "targets:"]
    for i, scenario in enumerate(("ok", *FAULTS)):
        lines.append(f"  - {{name: f{i}, kind: foundry, url: '{server.url(scenario)}'}}")
    lines.append(f"  - {{name: refused, kind: openai, url: 'http://127.0.0.1:{refused_port}/v1'}}")
    lines.append(f"  - {{name: webui, kind: openwebui, url: '{server.url('ok')}'}}")
    lines.append(f"  - {{name: stuck, kind: foundry, url: '{server.url(STUCK)}', interval: 60s, "
                 "timeout: 30s, probes: [models]}")
    lines.append(f"probe_urls: [{{url: '{server.url('hang')}', modules: [foundry]}}]")
    return "\n".join(lines) + "\n"


@pytest.fixture
def exporter(tmp_path: Path, fault_server: FaultServer) -> Iterator[tuple[subprocess.Popen, str]]:
    config = tmp_path / "config.yml"
    refused, port = free_ports(2)  # distinct: "refused" must never be the exporter itself
    config.write_text(_config(fault_server, refused))
    proc = subprocess.Popen([sys.executable, "-m", "foundry_exporter", "--config", str(config),
                             "--listen-address", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _samples(body: str, name: str) -> dict[frozenset, float]:
    return {frozenset(s.labels.items()): s.value
            for fam in text_string_to_metric_families(body) for s in fam.samples if s.name == name}


def _probe_runs_in(body: str) -> dict[str, float]:
    runs = _samples(body, "foundry_probes_total")
    return {f"{dict(k)['target']}/{dict(k)['probe']}": v for k, v in runs.items()}


def _all_probed(base: str) -> bool:
    runs = _probe_runs_in(httpx.get(f"{base}/metrics").text)
    return bool(runs) and all(v > 0 for k, v in runs.items() if not k.startswith("stuck/"))


def test_process_serves_scrapes_health_probe_and_stops_on_sigterm(exporter, fault_server) -> None:
    proc, base = exporter
    wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, "/healthz 200", timeout=20, interval=0.1)
    wait_for(lambda: _all_probed(base), "every probe ran once", timeout=20, interval=0.1)

    # A scrape never waits on a probe: with stuck's probe in flight (the fault
    # server holds its request for up to 30 s), 20 scrapes are all answered and
    # every one of them still shows that probe unfinished. Latency numbers:
    # perf/exporter.py.
    wait_for(lambda: ("GET", f"/{STUCK}/v1/models") in fault_server.requests,
             "the stuck target's probe reached the fault server", timeout=20, interval=0.05)
    for _ in range(20):
        response = httpx.get(f"{base}/metrics", timeout=20)
        assert response.status_code == 200
        assert _probe_runs_in(response.text)["stuck/models"] == 0

    body = response.text
    assert 'foundry_up{kind="foundry",target="f0"} 1.0' in body
    assert 'foundry_up{kind="foundry",target="f1"} 0.0' in body
    assert 'foundry_up{kind="openai",target="refused"} 0.0' in body
    assert 'foundry_up{kind="openwebui",target="webui"} 1.0' in body
    failures = _samples(body, "foundry_probe_failures_total")
    assert failures[frozenset({"target": "f4", "probe": "chat", "reason": "stream_cut"}.items())] >= 1
    assert failures[frozenset({"target": "f5", "probe": "models", "reason": "too_large"}.items())] >= 1
    # delay/500 holds the first token 500 ms; the 1 s timeout bounds it from above.
    ttft = _samples(body, "foundry_chat_last_ttft_seconds")
    assert 0.5 <= ttft[frozenset({"target": "f6", "model": MODEL}.items())] < 1.0
    check = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr

    # /probe of an allowed URL: budget from the scrape-timeout header (3 s - 0.5 s
    # offset, under the module's 10 s timeout): the hanging probe times out at the
    # budget, and the answer comes before Prometheus would give up.
    hang = fault_server.url("hang")
    started = time.perf_counter()
    probe = httpx.get(f"{base}/probe", params={"target": hang, "module": "foundry"},
                      headers={"X-Prometheus-Scrape-Timeout-Seconds": "3"}, timeout=10)
    elapsed = time.perf_counter() - started
    assert probe.status_code == 200
    assert f'foundry_probe_failures_total{{probe="models",reason="timeout",target="{hang}"}} 1.0' \
        in probe.text
    assert 2.5 <= elapsed < 3.0
    refused = httpx.get(f"{base}/probe", params={"target": "x", "module": "nope"},
                        headers={"X-Prometheus-Scrape-Timeout-Seconds": "3"})
    assert refused.status_code == 403

    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 3
