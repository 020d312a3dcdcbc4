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


def _config(server: FaultServer, refused_port: int) -> str:
    lines = ["defaults: {interval: 2s, timeout: 1s}", "targets:"]
    for i, scenario in enumerate(("ok", *FAULTS)):
        lines.append(f"  - {{name: f{i}, kind: foundry, url: '{server.url(scenario)}'}}")
    lines.append(f"  - {{name: refused, kind: openai, url: 'http://127.0.0.1:{refused_port}/v1'}}")
    lines.append(f"  - {{name: webui, kind: openwebui, url: '{server.url('ok')}'}}")
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


def _all_probed(base: str) -> bool:
    runs = _samples(httpx.get(f"{base}/metrics").text, "foundry_probes_total")
    return bool(runs) and all(v > 0 for v in runs.values())


def test_process_serves_fast_scrapes_health_probe_and_stops_on_sigterm(exporter) -> None:
    proc, base = exporter
    wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, "/healthz 200", timeout=20, interval=0.1)
    wait_for(lambda: _all_probed(base), "every probe ran once", timeout=20, interval=0.1)

    # Scrapes stay fast while hanging/slow targets are being probed.
    latencies = []
    for _ in range(20):
        started = time.perf_counter()
        response = httpx.get(f"{base}/metrics")
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200
    assert max(latencies) < 0.25, latencies

    body = response.text
    assert 'foundry_up{kind="foundry",target="f0"} 1.0' in body
    assert 'foundry_up{kind="foundry",target="f1"} 0.0' in body
    assert 'foundry_up{kind="openai",target="refused"} 0.0' in body
    assert 'foundry_up{kind="openwebui",target="webui"} 1.0' in body
    failures = _samples(body, "foundry_probe_failures_total")
    assert failures[frozenset({"target": "f4", "probe": "chat", "reason": "stream_cut"}.items())] >= 1
    assert failures[frozenset({"target": "f5", "probe": "models", "reason": "too_large"}.items())] >= 1
    ttft = _samples(body, "foundry_chat_last_ttft_seconds")
    assert 0.5 <= ttft[frozenset({"target": "f6", "model": MODEL}.items())] < 0.52
    check = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr

    # /probe: on demand, budget from the scrape-timeout header (1.5 s - 0.5 s offset).
    started = time.perf_counter()
    probe = httpx.get(f"{base}/probe", params={"target": "f1", "module": "foundry"},
                      headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}, timeout=5)
    assert time.perf_counter() - started < 1.5
    assert probe.status_code == 200
    assert 'foundry_probe_failures_total{probe="models",reason="timeout",target="f1"} 1.0' in probe.text
    assert httpx.get(f"{base}/probe", params={"target": "x", "module": "nope"}).status_code == 400

    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 3
