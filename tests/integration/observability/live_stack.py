"""A real exporter and a real Prometheus on loopback, for the observability tests.

The Prometheus config is the project's own prometheus.yml with only the scrape
target addresses rewritten (``render_prometheus_config``); rules are the
project's files, reached through a ``rules`` symlink next to the rendered
config because prometheus.yml names them relative to itself.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import yaml

PROMETHEUS = "/usr/bin/prometheus"
SECRETS_MOUNT = "/etc/prometheus-secrets"  # the gateway key and target list, in the container
T = TypeVar("T")


def render_prometheus_config(text: str, addresses: dict[str, list[str]],
                             secrets_dir: Path | None = None) -> str:
    """prometheus.yml with each job's targets (static or a file_sd list) replaced by
    static ``addresses[job]``, and the container's secrets folder by ``secrets_dir``.

    Every job must be given an address: a job left pointing at a compose
    hostname would fail silently in a test.
    """
    if secrets_dir is not None:
        text = text.replace(SECRETS_MOUNT, str(secrets_dir))
    doc = yaml.safe_load(text)
    jobs = [c["job_name"] for c in doc["scrape_configs"]]
    if sorted(jobs) != sorted(addresses):
        raise ValueError(f"prometheus.yml jobs {jobs} != addresses given for {sorted(addresses)}")
    for scrape in doc["scrape_configs"]:
        scrape.pop("file_sd_configs", None)
        scrape["static_configs"] = [{"targets": addresses[scrape["job_name"]]}]
    return yaml.safe_dump(doc, sort_keys=False)


def wait_until(what: str, check: Callable[[], T | None], deadline_s: float, every_s: float = 1.0) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` at the deadline."""
    end = time.monotonic() + deadline_s
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not ready after {deadline_s:.0f}s (last error: {last_error})")
        time.sleep(every_s)


@dataclass
class Process:
    """A child process we started, with its log file; ``stop`` ends only it."""

    name: str
    popen: subprocess.Popen
    log: Path

    def alive_or_fail(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.popen.returncode}:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def start(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    handle = log.open("wb")
    popen = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=None if env is None else {**os.environ, **env})
    handle.close()
    return Process(name, popen, log)


def start_exporter(config: Path, port: int, workdir: Path, env: dict[str, str] | None = None) -> Process:
    """The exporter on ``port``; ``env`` adds variables its config names (api_key_env)."""
    proc = start("exporter", [sys.executable, "-m", "foundry_exporter", "--config", str(config),
                              "--listen-address", f"127.0.0.1:{port}"], workdir / "exporter.log", env)

    def metrics_served() -> bool:
        proc.alive_or_fail()
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 200

    wait_until("exporter /metrics", metrics_served, deadline_s=30)
    return proc


ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def start_alertmanager(config: Path, port: int, workdir: Path) -> Process:
    """Debian's Alertmanager on loopback ``port`` with ``config``, single node, ready."""
    proc = start("alertmanager", [
        ALERTMANAGER, f"--config.file={config}", f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
    ], workdir / "alertmanager.log")

    def ready() -> bool:
        proc.alive_or_fail()
        return httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200

    wait_until("alertmanager /-/ready", ready, deadline_s=30, every_s=0.2)
    return proc


def start_prometheus(project_config: Path, rules_dir: Path, addresses: dict[str, list[str]],
                     port: int, workdir: Path, secrets_dir: Path | None = None) -> Process:
    confdir = workdir / "prometheus"
    confdir.mkdir()
    (confdir / "rules").symlink_to(rules_dir)
    config = confdir / "prometheus.yml"
    config.write_text(render_prometheus_config(project_config.read_text(), addresses, secrets_dir))
    proc = start("prometheus", [
        PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ], workdir / "prometheus.log")

    def ready() -> bool:
        proc.alive_or_fail()
        return httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200

    wait_until("prometheus /-/ready", ready, deadline_s=60)
    return proc


def instant_query(base_url: str, promql: str) -> list[dict]:
    """The result vector of an instant query; raises on a query error."""
    answer = httpx.get(f"{base_url}/api/v1/query", params={"query": promql}, timeout=10).json()
    if answer.get("status") != "success":
        raise AssertionError(f"query failed: {answer.get('error')}: {promql}")
    data = answer["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return data["result"]


def recording_rules(base_url: str) -> list[dict]:
    """The recording rules the live Prometheus has loaded (its rules API)."""
    answer = httpx.get(f"{base_url}/api/v1/rules", params={"type": "record"}, timeout=10).json()
    return [r for g in answer["data"]["groups"] for r in g["rules"] if r["type"] == "recording"]


def recording_rules_without_data(base_url: str, rules: list[dict]) -> list[str]:
    """``name{labels}`` of each rule whose recorded series has no finite sample now
    (or whose last evaluation failed)."""
    missing = []
    for rule in rules:
        labels = "".join(f',{k}="{v}"' for k, v in sorted(rule.get("labels", {}).items()))
        selector = f'{{__name__="{rule["name"]}"{labels}}}'
        samples = instant_query(base_url, selector)
        finite = any(math.isfinite(float(s["value"][1])) for s in samples)
        if rule.get("health") != "ok" or not finite:
            missing.append(f"{rule['name']}{{{labels.lstrip(',')}}} health={rule.get('health')}")
    return missing
