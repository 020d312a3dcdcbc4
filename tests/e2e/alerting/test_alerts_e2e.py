"""Alerts reach a person: the stack's Alertmanager on the real engine delivers to a
webhook receiver this module runs on the host, bound to the Docker bridge gateway
(containers reach it as host.docker.internal; no traffic leaves this machine).

What is real and what is shortened:
- `invoke up` renders the config from .env (ALERT_WEBHOOK_URL with a token in its
  path) and starts Alertmanager; Prometheus is shown sending to it
  (/api/v1/alertmanagers). Only Alertmanager's grouping waits are shortened, through
  the test-only STACK_TEST_ALERT_GROUP_WAIT/_INTERVAL knobs (1 s / 5 s); the rules,
  their `for:` and Prometheus' scrape and evaluation intervals are the shipped ones.
- Pointed at a port where nothing listens (a .env change + `invoke up`, which
  reloads Alertmanager), `invoke alerts --test` reports NOT delivered with the
  reason, the token redacted.
- The real path, on one stack: Foundry is really stopped; Prometheus' real rule goes
  pending, then firing after its real `for: 2m`; Prometheus sends it to Alertmanager,
  which notifies the receiver exactly once (bound NOTIFY_BOUND_S from the fault).
  A symptom it inhibits (posted: the real symptom rules need `for: 5m`-`10m`) is not
  notified. `./stack status` and `./stack alerts` list the firing alert. Foundry
  restarted, Prometheus resolves the alert and a resolved notification arrives
  (bound RESOLVE_BOUND_S); status says "no alerts firing" again.
- Why the wait is not shorter: the `for` is the rule (shortening it tests another
  rule set), and the rest is Prometheus' scrape and evaluation intervals (15 s each,
  prometheus/prometheus.yml's global section: no .env setting, the same file in every
  stack) plus the exporter's probe interval: cutting them would save at most ~30 s
  of the ~145 s and test another Prometheus config.
- The 2-minute `for` is not idle: `alerts --test` (the whole real path to the
  receiver) and the SIGKILL test (Alertmanager restarted by its restart policy,
  the silence made early in the module kept) run while the rule is pending; that
  the kill lands before the rule fires is asserted.
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
from stackctl.alerting.client import _parse_time as parse_time
from stackctl.foundry import bridge
from tests.e2e.helpers import exporter_sample, states, wait_for
from tests.plugins.common import free_port
from tests.plugins.stack import E2EStack, write_env

TOKEN = f"tok-{uuid.uuid4().hex[:12]}"  # stands for the secret part of a webhook URL
MODULE_BUDGET_S = 330
# Fault → notification, by construction: exporter probe (≤15 s) + scrape (≤15 s) +
# rule evaluation (≤15 s) + `for: 2m` (counted in evaluations, so ≤ 120 s + 15 s) +
# group wait (1 s) ≈ 180 s at worst; the rest is one Prometheus re-send (1 min) in
# case its first send met Alertmanager mid-restart, and a loaded 2-core CI machine.
NOTIFY_BOUND_S = 300
RULE_FOR_S = 120  # prometheus/rules/foundry.alerts.yml, FoundryLocalDown
# Restart → resolved: probe + scrape + evaluation (≤45 s) + group interval (5 s).
RESOLVE_BOUND_S = 120


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


@dataclass(frozen=True)
class Fault:
    t0: float  # monotonic, when `foundry.stop` was issued
    target: str
    pending_after_s: float
    active_at: datetime  # Prometheus' activeAt: when the rule went pending
    measured: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def fault(stack) -> Fault:
    """Foundry Local really stopped, once for the module; Prometheus' real rule pending."""
    wait_for(lambda: exporter_sample(stack, "foundry_up", kind="foundry") == 1.0,
             "the exporter sees Foundry up before the fault", timeout=90)
    t0 = time.monotonic()
    cp = stack.invoke("foundry.stop")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    pending = wait_for(lambda: _prometheus_alert(stack, "FoundryLocalDown"),
                       "Prometheus evaluates FoundryLocalDown after the real fault", timeout=90)
    return Fault(t0, pending["labels"]["target"], time.monotonic() - t0, parse_time(pending["activeAt"]))


def test_foundry_stopped_the_real_rule_is_pending_and_status_shows_no_firing_alert(stack, fault):
    assert _prometheus_alert(stack, "FoundryLocalDown")["state"] == "pending"
    cp = stack.invoke("status")
    assert cp.returncode == 1, cp.stdout + cp.stderr  # Foundry is down: unhealthy
    assert "alerts: no alerts firing" in cp.stdout  # pending is Prometheus' business only
    assert "error:" not in cp.stderr


def test_alerts_test_delivers_with_the_runbook_and_shows_no_secret(stack, receiver, fault):
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


def test_sigkilled_alertmanager_restarts_and_keeps_its_silences(stack, silence, fault):
    silence_id, snapshots_before = silence
    # The silence is on disk once a maintenance tick (1 min, compose.yaml) has run since.
    wait_for(lambda: _am_metric(stack, "alertmanager_silences_snapshot_duration_seconds_count")
             > snapshots_before, "a silences snapshot after the silence was made", timeout=90)
    # Killed before the rule fires: a kill after the notification (its log not yet on
    # disk) could make Alertmanager notify again, which is not what the next test counts.
    assert _prometheus_alert(stack, "FoundryLocalDown")["state"] == "pending", \
        "FoundryLocalDown fired before the SIGKILL test ran: the module is too slow for its overlap"
    c = docker.from_env()
    ctr = c.containers.get(states(stack)["alertmanager"].container)
    restarts = ctr.attrs["RestartCount"]
    os.kill(ctr.attrs["State"]["Pid"], signal.SIGKILL)
    wait_for(lambda: c.containers.get(ctr.id).attrs["RestartCount"] > restarts,
             "alertmanager restarted by its restart policy", timeout=60)
    wait_for(lambda: states(stack)["alertmanager"].ok, "alertmanager healthy again", timeout=90)
    kept = httpx.get(f"{_am(stack)}/api/v2/silence/{silence_id}", timeout=5)
    assert kept.status_code == 200 and kept.json()["status"]["state"] == "active", kept.text
    print(f"\nSIGKILL test done {time.monotonic() - fault.t0:.1f}s after the fault (rule still pending)")


def test_the_real_rule_fires_after_its_for_and_notifies_exactly_once(stack, receiver, fault):
    got = receiver.received
    (body, alert), = wait_for(lambda: got.alerts("FoundryLocalDown"), "the FoundryLocalDown notification",
                              timeout=NOTIFY_BOUND_S - (time.monotonic() - fault.t0), interval=0.5)
    received_at = next(t for _, b, t in got.items if b is body)
    fault.measured["notify_s"] = received_at - fault.t0
    # Sent by Prometheus (its rule's link), not posted, and only once `for` had passed
    # since the rule went pending.
    assert "/graph?g0.expr=" in alert["generatorURL"], alert
    received_wall = datetime.now(UTC) - timedelta(seconds=time.monotonic() - received_at)
    held = (received_wall - fault.active_at).total_seconds()
    assert held >= RULE_FOR_S, f"notified {held:.0f}s after the rule went pending (for: {RULE_FOR_S}s)"
    assert alert["labels"]["target"] == fault.target and alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["summary"] == f"Foundry Local {fault.target} is unreachable"
    assert "`./stack doctor`" in alert["annotations"]["runbook"]
    assert [a["labels"]["alertname"] for a in body["alerts"]] == ["FoundryLocalDown"]
    print(f"\nFoundry stop → Prometheus pending: {fault.pending_after_s:.1f}s; "
          f"→ FoundryLocalDown notification: {fault.measured['notify_s']:.1f}s (bound {NOTIFY_BOUND_S}s)")


def test_status_and_alerts_list_the_firing_alert_with_its_runbook(stack, fault):
    line = f"FoundryLocalDown on {fault.target} [critical] — active, for "
    cp = stack.invoke("status")
    assert cp.returncode == 1, cp.stdout + cp.stderr  # Foundry is still down
    assert "error:" not in cp.stderr
    assert "alerts firing (1):" in cp.stdout
    (shown,) = [ln for ln in cp.stdout.splitlines() if line in ln]
    assert shown.endswith(f": Foundry Local {fault.target} is unreachable"), shown
    assert "runbook: README.md#troubleshooting - run `./stack doctor`" in cp.stdout
    listing = stack.invoke("alerts")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert line in listing.stdout


def test_the_symptoms_it_causes_are_inhibited(stack, receiver, fault):
    got = receiver.received
    # Posted: the real symptom rules need `for: 5m`-`10m` (not produced on demand).
    now = datetime.now(UTC)
    later = (now + timedelta(minutes=10)).isoformat()
    symptom = {"labels": {"alertname": "FoundryTTFTHigh", "target": fault.target, "severity": "warning",
                          "foundry_symptom": "true"},
               "annotations": {"summary": "TTFT high", "runbook": "README.md#troubleshooting"},
               "startsAt": now.isoformat(), "endsAt": later}
    _post(stack, [symptom])
    listing = stack.invoke("status")
    assert f"FoundryTTFTHigh on {fault.target} [warning] — suppressed (inhibited)" in listing.stdout
    # Ordering, not a sleep: an uninhibited marker posted after the symptom is delivered
    # only after the symptom's own group would have been flushed (same group_wait).
    marker = {"labels": {"alertname": "E2EMarker", "target": "marker"}, "startsAt": now.isoformat(),
              "endsAt": later}
    _post(stack, [marker])
    wait_for(lambda: got.alerts("E2EMarker"), "the marker notification", timeout=30)
    assert not got.alerts("FoundryTTFTHigh"), "an inhibited symptom was notified"
    assert len(got.alerts("FoundryLocalDown")) == 1
    # Gone again before Foundry is back (else the symptom, no longer inhibited, would notify).
    ended = datetime.now(UTC).isoformat()
    _post(stack, [{**symptom, "endsAt": ended}, {**marker, "endsAt": ended}])


def test_foundry_restarted_the_alert_resolves_once_and_status_is_clear(stack, receiver, fault):
    got = receiver.received
    cp = stack.invoke("foundry.serve")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    t_serve = time.monotonic()
    (body, alert), = wait_for(lambda: got.alerts("FoundryLocalDown", "resolved"), "the resolved notification",
                              timeout=RESOLVE_BOUND_S, interval=0.5)
    received_at = next(t for _, b, t in got.items if b is body)
    assert alert["labels"]["target"] == fault.target and alert["status"] == "resolved"
    assert len(got.alerts("FoundryLocalDown")) == 1, "notified again, not only resolved"
    assert not got.alerts("FoundryTTFTHigh")
    # Nothing else was notified on the way (the stack's own alerts stayed quiet).
    names = {a["labels"]["alertname"] for b in got.bodies() for a in b.get("alerts", [])}
    assert names <= {"FoundryLocalDown", "E2EMarker", TEST_ALERTNAME}, names
    cp = wait_for(lambda: (lambda cp: cp if "alerts: no alerts firing" in cp.stdout else None)(
        stack.invoke("status")), "status without firing alerts", timeout=60, interval=2)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    print(f"\nFoundry restarted (`foundry.serve` returned) → resolved notification: "
          f"{received_at - t_serve:.1f}s (bound {RESOLVE_BOUND_S}s); fault → notification "
          f"{fault.measured['notify_s']:.1f}s")
