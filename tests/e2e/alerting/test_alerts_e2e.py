"""Alerts reach a person: the stack's Alertmanager on the real engine delivers to a
webhook receiver this module runs on the host, bound to the Docker bridge gateway
(containers reach it as host.docker.internal; no traffic leaves this machine).

What is real and what is shortened (module budget: 3 minutes):
- `invoke up` renders the config from .env (ALERT_WEBHOOK_URL with a token in its
  path) and starts Alertmanager; Prometheus is shown sending to it
  (/api/v1/alertmanagers). Only the grouping waits are shortened, through the
  test-only STACK_TEST_ALERT_GROUP_WAIT/_INTERVAL knobs; the rules are untouched.
- `invoke alerts --test` goes the whole real path to the receiver; pointed at a
  port where nothing listens (a .env change + `invoke up`, which reloads
  Alertmanager) it reports NOT delivered with the reason, the token redacted.
- Foundry is really stopped and Prometheus's real rule evaluation is shown
  pending FoundryLocalDown. The rule's `for: 2m` is not waited for: the module
  posts Prometheus's own pending alert (its labels and rendered annotations) to
  Alertmanager as firing, together with a symptom alert it inhibits. Exactly one
  notification (FoundryLocalDown) arrives; Foundry restarted and the alert resolved,
  a resolved notification arrives. The full path Foundry stop → notification with
  the shipped timings is measured by measure_fault_to_notification.py (README, Alerting).
- Alertmanager SIGKILLed (after its maintenance tick wrote a silence made early in
  the module) is restarted by its restart policy and still has the silence.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker
import httpx
import pytest

from stackctl.alerting.client import TEST_ALERTNAME
from stackctl.foundry import bridge
from tests.e2e.helpers import exporter_sample, states, wait_for
from tests.plugins.common import free_port
from tests.plugins.stack import E2EStack, write_env

TOKEN = f"tok-{uuid.uuid4().hex[:12]}"  # stands for the secret part of a webhook URL
MODULE_BUDGET_S = 180


@dataclass
class Received:
    lock: threading.Lock = field(default_factory=threading.Lock)
    items: list[tuple[str, dict, float]] = field(default_factory=list)

    def bodies(self) -> list[dict]:
        with self.lock:
            return [b for _, b, _ in self.items]

    def paths(self) -> list[str]:
        with self.lock:
            return [p for p, _, _ in self.items]

    def alerts(self, name: str, status: str = "firing") -> list[tuple[dict, dict]]:
        """(notification, alert) for every alert ``name`` in a notification of ``status``."""
        return [(b, a) for b in self.bodies() if b.get("status") == status
                for a in b.get("alerts", []) if a["labels"].get("alertname") == name]


@dataclass
class Receiver:
    host: str
    port: int
    received: Received
    server: ThreadingHTTPServer


@pytest.fixture(scope="module")
def receiver():
    gateway = bridge.gateway_ip()
    assert gateway, "no Docker bridge gateway found (is the engine running?)"
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with received.lock:
                received.items.append((self.path, body, time.monotonic()))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    port = free_port(gateway)
    server = ThreadingHTTPServer((gateway, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Receiver(gateway, port, received, server)
    server.shutdown()
    server.server_close()


def _webhook(port: int) -> str:
    return f"http://host.docker.internal:{port}/hook/{TOKEN}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, stack_images, receiver):
    started = time.monotonic()
    root = tmp_path_factory.mktemp("alert-stack")
    s = E2EStack(root / ".env", root / "state",
                 extra_env={"STACK_TEST_ALERT_GROUP_WAIT": "1s",
                            "STACK_TEST_ALERT_GROUP_INTERVAL": "5s"})
    images = {k: v for k, v in stack_images.items() if k.endswith("_IMAGE")}
    write_env(s.env_file, s.state_dir, images, ALERTMANAGER_PORT=str(free_port()),
              ALERT_WEBHOOK_URL=_webhook(receiver.port))
    cp = s.invoke("up", timeout=900)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert TOKEN not in cp.stdout + cp.stderr
    s.up_seconds = time.monotonic() - started
    yield s
    s.invoke("down", "--volumes", "--yes", timeout=300)
    s.invoke("foundry.stop", timeout=120)
    print(f"\nalerting e2e module: {time.monotonic() - started:.0f}s (budget {MODULE_BUDGET_S}s)")


def _am(s: E2EStack) -> str:
    return s.url("ALERTMANAGER_PORT")


def test_up_renders_a_private_config_and_alertmanager_is_healthy(stack):
    folder = stack.state_dir / "alertmanager"
    config = folder / "alertmanager.yml"
    assert stack.env["ALERTMANAGER_CONFIG_DIR"] == str(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert TOKEN in config.read_text()  # the secret lives here (and in .env), nowhere else
    st = states(stack)["alertmanager"]
    assert st.ok, st
    assert st.ports and all(p.startswith("127.0.0.1:") for p in st.ports), st
    print(f"\n`invoke up` with Alertmanager: {stack.up_seconds:.1f}s")


def _am_metric(s: E2EStack, name: str) -> float:
    text = httpx.get(_am(s) + "/metrics", timeout=5).text
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


@pytest.fixture(scope="module")
def silence(stack):
    """A silence made early: the module's later tests give Alertmanager's 1-minute
    maintenance tick time to write it to the volume before the SIGKILL test."""
    snapshots = _am_metric(stack, "alertmanager_silences_snapshot_duration_seconds_count")
    now = datetime.now(UTC)
    r = httpx.post(_am(stack) + "/api/v2/silences", timeout=5, json={
        "matchers": [{"name": "alertname", "value": "E2ESilenced", "isRegex": False}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "e2e", "comment": "kept across a SIGKILL"})
    r.raise_for_status()
    return r.json()["silenceID"], snapshots


def test_prometheus_sends_its_alerts_to_the_stacks_alertmanager(stack, silence):
    def active():
        r = httpx.get(stack.url("PROMETHEUS_PORT") + "/api/v1/alertmanagers", timeout=5).json()
        return [a["url"] for a in r["data"]["activeAlertmanagers"] if ":9093/" in a["url"]]
    (url,) = wait_for(active, "Prometheus lists the stack's Alertmanager", timeout=60)
    assert url.endswith("/api/v2/alerts")


def test_alerts_test_delivers_with_the_runbook_and_shows_no_secret(stack, receiver):
    cp = stack.invoke("alerts", "--test", timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "webhook: delivered" in cp.stdout
    assert TOKEN not in cp.stdout + cp.stderr
    (_, alert), *_ = receiver.received.alerts(TEST_ALERTNAME)
    assert alert["annotations"]["runbook"].startswith("README.md#alerting")
    assert "alerts --test" in alert["annotations"]["runbook"]
    assert f"/hook/{TOKEN}" in receiver.received.paths()
    # then resolved: its resolved notice follows within the test route's 10 s interval
    wait_for(lambda: receiver.received.alerts(TEST_ALERTNAME, "resolved"),
             "the resolved test notification", timeout=40)


def test_an_unreachable_receiver_is_reported_with_its_reason_and_the_token_redacted(stack, receiver):
    text = stack.env_file.read_text()
    dead = free_port(receiver.host)  # nothing listens there
    stack.env_file.write_text(text.replace(_webhook(receiver.port), _webhook(dead)))
    try:
        cp = stack.invoke("up", timeout=600)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert "Alertmanager reloaded" in cp.stdout
        cp = stack.invoke("alerts", "--test", timeout=120)
        out = cp.stdout + cp.stderr
        assert cp.returncode == 1, out
        assert "webhook: gave up" in out and "NOT delivered" in out
        assert "last error:" in out and "connection refused" in out.lower()
        assert TOKEN not in out
    finally:
        stack.env_file.write_text(text)
        cp = stack.invoke("up", timeout=600)
    assert cp.returncode == 0 and "Alertmanager reloaded" in cp.stdout, cp.stdout + cp.stderr


def _prometheus_alert(s: E2EStack, name: str) -> dict | None:
    r = httpx.get(s.url("PROMETHEUS_PORT") + "/api/v1/alerts", timeout=5).json()
    return next((a for a in r["data"]["alerts"] if a["labels"]["alertname"] == name), None)


def _post(s: E2EStack, alerts: list[dict]) -> None:
    httpx.post(_am(s) + "/api/v2/alerts", json=alerts, timeout=5).raise_for_status()


def test_foundry_down_notifies_once_its_symptoms_are_inhibited_and_it_resolves(stack, receiver):
    got = receiver.received
    t_fault = time.monotonic()
    assert stack.invoke("foundry.stop").returncode == 0
    pending = wait_for(lambda: _prometheus_alert(stack, "FoundryLocalDown"),
                       "Prometheus evaluates FoundryLocalDown (pending) after the real fault", timeout=75)
    t_pending = time.monotonic() - t_fault
    assert pending["state"] in ("pending", "firing")
    target = pending["labels"]["target"]

    # As Prometheus sends it once `for: 2m` has passed, plus a symptom it causes.
    now = datetime.now(UTC).isoformat()
    down = {"labels": pending["labels"], "annotations": pending["annotations"], "startsAt": now}
    symptom = {"labels": {"alertname": "FoundryTTFTHigh", "target": target, "severity": "warning",
                          "foundry_symptom": "true"},
               "annotations": {"summary": "TTFT high", "runbook": "README.md#troubleshooting"},
               "startsAt": now}
    t_post = time.monotonic()
    _post(stack, [down, symptom])
    (_, alert), = wait_for(lambda: got.alerts("FoundryLocalDown"), "the FoundryLocalDown notification",
                              timeout=30)
    t_notified = time.monotonic() - t_post
    assert alert["labels"]["target"] == target
    assert "invoke doctor" in alert["annotations"]["runbook"]

    listing = stack.invoke("alerts")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert f"FoundryLocalDown on {target} [critical] — active" in listing.stdout
    assert "runbook: README.md#troubleshooting" in listing.stdout
    assert f"FoundryTTFTHigh on {target} [warning] — suppressed (inhibited)" in listing.stdout

    # Ordering, not a sleep: an uninhibited marker posted after the symptom is delivered
    # only after the symptom's own group would have been flushed (same group_wait).
    marker = {"labels": {"alertname": "E2EMarker", "target": "marker"}, "startsAt": now}
    _post(stack, [marker])
    wait_for(lambda: got.alerts("E2EMarker"), "the marker notification", timeout=30)
    assert not got.alerts("FoundryTTFTHigh"), "an inhibited symptom was notified"
    assert len(got.alerts("FoundryLocalDown")) == 1

    cp = stack.invoke("foundry.serve")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    wait_for(lambda: exporter_sample(stack, "foundry_up", kind="foundry") == 1.0,
             "exporter sees Foundry again", timeout=90)
    wait_for(lambda: _prometheus_alert(stack, "FoundryLocalDown") is None,
             "Prometheus no longer has FoundryLocalDown", timeout=75)
    _post(stack, [{**down, "endsAt": datetime.now(UTC).isoformat()}])
    wait_for(lambda: got.alerts("FoundryLocalDown", "resolved"), "the resolved notification", timeout=30)
    print(f"\nFoundry stop → Prometheus pending FoundryLocalDown: {t_pending:.1f}s; "
          f"alert posted → webhook notified (group_wait 1s): {t_notified:.1f}s")


def test_sigkilled_alertmanager_restarts_and_keeps_its_silences(stack, silence):
    silence_id, snapshots_before = silence
    # The silence is on disk once a maintenance tick (1 min, compose.yaml) has run since.
    wait_for(lambda: _am_metric(stack, "alertmanager_silences_snapshot_duration_seconds_count")
             > snapshots_before, "a silences snapshot after the silence was made", timeout=90)
    c = docker.from_env()
    ctr = c.containers.get(states(stack)["alertmanager"].container)
    restarts = ctr.attrs["RestartCount"]
    os.kill(ctr.attrs["State"]["Pid"], signal.SIGKILL)
    wait_for(lambda: c.containers.get(ctr.id).attrs["RestartCount"] > restarts,
             "alertmanager restarted by its restart policy", timeout=60)
    wait_for(lambda: states(stack)["alertmanager"].ok, "alertmanager healthy again", timeout=90)
    kept = httpx.get(f"{_am(stack)}/api/v2/silence/{silence_id}", timeout=5)
    assert kept.status_code == 200 and kept.json()["status"]["state"] == "active", kept.text
