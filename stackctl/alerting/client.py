"""Alertmanager's HTTP API as the stack's tooling uses it: the active alerts, a
synthetic test alert through the real path, and a config reload.

Invariants:
- Views are pure functions over what Alertmanager answered (``alert_rows``,
  ``alert_lines``, ``counters``, ``verdict``); ``Alertmanager`` only does HTTP
  (inject the ``httpx.Client`` to test it). `alerts` and `status` print the same
  ``alert_lines``; ``listing`` is status's way in and never raises.
- Nothing here returns, prints or raises with a receiver's URL or password:
  the API calls never ask for the config (/api/v2/status carries it), and log
  lines quoted as a reason pass through ``redact`` first.
- "Delivered" is Alertmanager's own account: a notification request per
  receiver kind succeeded (alertmanager_notification_requests_total minus
  _failed_total rose); "not delivered" is a notification given up
  (alertmanager_notifications_failed_total rose) or no success by the deadline.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from stackctl.console import cmd
from stackctl.errors import StackError

# alertmanager/alertmanager.base.yml routes this name with no grouping wait.
TEST_ALERTNAME = "FoundryStackTest"
TEST_TARGET = "invoke-alerts-test"
TEST_RUNBOOK = (f"README.md#alerting - a test sent by `{cmd('alerts --test')}`; "
                "nothing is wrong, it resolves by itself")
TEST_DEADLINE_S = 60.0  # group_wait 0s; a slow SMTP server or webhook gets its retries


# -- pure views -------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRow:
    name: str
    target: str
    severity: str
    state: str  # active | suppressed (silenced or inhibited) | unprocessed
    age_s: float
    summary: str
    runbook: str
    why_suppressed: str = ""


def _parse_time(stamp: str) -> datetime:
    # Alertmanager writes RFC 3339 with up to nanoseconds; Python reads microseconds.
    m = re.fullmatch(r"([^.]+)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 time: {stamp!r}")
    head, frac, zone = m.groups()
    frac = f".{frac[:6].ljust(6, '0')}" if frac else ""
    return datetime.fromisoformat(f"{head}{frac}{'+00:00' if zone == 'Z' else zone}")


def _one_line(text: str) -> str:
    # An annotation may span lines (a folded YAML block, a hand-posted alert); a row is one line.
    return " ".join(str(text).split())


def alert_rows(payload: Iterable[Mapping], now: datetime) -> list[AlertRow]:
    """Rows for GET /api/v2/alerts, oldest first. Pure."""
    rows = []
    for a in payload:
        labels, notes, status = a.get("labels") or {}, a.get("annotations") or {}, a.get("status") or {}
        why = []
        if status.get("inhibitedBy"):
            why.append("inhibited")
        if status.get("silencedBy"):
            why.append("silenced")
        rows.append(AlertRow(
            name=labels.get("alertname", "?"), target=labels.get("target", ""),
            severity=labels.get("severity", ""), state=status.get("state", "?"),
            age_s=max(0.0, (now - _parse_time(a["startsAt"])).total_seconds()),
            summary=_one_line(notes.get("summary", "")), runbook=_one_line(notes.get("runbook", "")),
            why_suppressed=" and ".join(why)))
    return sorted(rows, key=lambda r: (-r.age_s, r.name, r.target))


def age_text(seconds: float) -> str:
    """'45s', '12m', '3h 05m', '2d 04h'. Pure."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def alert_lines(rows: list[AlertRow], *, empty: str = "no active alerts") -> list[str]:
    """What `invoke alerts` (and `status`) print: one line per alert, its runbook
    under it; ``empty`` when there is none. Pure."""
    if not rows:
        return [empty]
    out = []
    for r in rows:
        state = r.state if not r.why_suppressed else f"{r.state} ({r.why_suppressed})"
        where = f" on {r.target}" if r.target else ""
        sev = f" [{r.severity}]" if r.severity else ""
        out.append(f"{r.name}{where}{sev} — {state}, for {age_text(r.age_s)}"
                   + (f": {r.summary}" if r.summary else ""))
        if r.runbook:
            out.append(f"    runbook: {r.runbook}")
    return out


@dataclass(frozen=True)
class Counters:
    """Alertmanager's delivery counters for one receiver kind (integration)."""

    notifications: float = 0.0
    notifications_failed: float = 0.0
    requests: float = 0.0
    requests_failed: float = 0.0


_COUNTER_FIELDS = {
    "alertmanager_notifications_total": "notifications",
    "alertmanager_notifications_failed_total": "notifications_failed",
    "alertmanager_notification_requests_total": "requests",
    "alertmanager_notification_requests_failed_total": "requests_failed",
}


def counters(metrics_text: str) -> dict[str, Counters]:
    """integration → Counters from Alertmanager's /metrics (summed over other labels,
    e.g. 0.28's ``reason``). A kind Alertmanager has not used yet is absent. Pure."""
    sums: dict[str, dict[str, float]] = {}
    for fam in text_string_to_metric_families(metrics_text):
        for s in fam.samples:
            name = _COUNTER_FIELDS.get(s.name)
            if name and "integration" in s.labels:
                by = sums.setdefault(s.labels["integration"], {})
                by[name] = by.get(name, 0.0) + s.value
    return {k: Counters(**v) for k, v in sums.items()}


@dataclass(frozen=True)
class Delivery:
    kind: str
    delivered: bool | None  # None: no outcome yet
    detail: str


def verdict(kinds: Iterable[str], before: Mapping[str, Counters],
            after: Mapping[str, Counters]) -> list[Delivery]:
    """Per receiver kind: delivered (a request succeeded), failed (a notification
    was given up), or pending (with how many requests failed so far). Pure."""
    out = []
    for kind in kinds:
        b, a = before.get(kind, Counters()), after.get(kind, Counters())
        ok = (a.requests - a.requests_failed) - (b.requests - b.requests_failed)
        failed_requests = a.requests_failed - b.requests_failed
        if ok >= 1:
            out.append(Delivery(kind, True, "delivered"))
        elif a.notifications_failed - b.notifications_failed >= 1:
            out.append(Delivery(kind, False, f"gave up after {failed_requests:.0f} failed request(s)"))
        elif failed_requests:
            out.append(Delivery(kind, None, f"{failed_requests:.0f} failed request(s), retrying"))
        else:
            out.append(Delivery(kind, None, "not sent yet"))
    return out


_ERR = re.compile(r'err="((?:[^"\\]|\\.)*)"')


def failure_reasons(log_text: str, kinds: Iterable[str], secrets: Iterable[str]) -> dict[str, str]:
    """kind → the last error Alertmanager logged for it (redacted, one line). Pure."""
    secrets = list(secrets)
    out: dict[str, str] = {}
    for line in log_text.splitlines():
        for kind in kinds:
            if f"integration={kind}" in line:
                m = _ERR.search(line)
                if m:
                    reason = m.group(1).replace('\\"', '"')
                    out[kind] = redact(reason, secrets)[:300]
    return out


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value, and the path and query of every secret URL,
    replaced by '<redacted>'. Pure."""
    parts: set[str] = set()
    for value in secrets:
        if not value:
            continue
        parts.add(value)
        u = urlsplit(value)
        if u.scheme and u.netloc:
            parts.update(p for p in (u.path, u.query, f"{u.path}?{u.query}") if len(p) > 1)
    for p in sorted(parts, key=len, reverse=True):
        text = text.replace(p, "<redacted>")
    return text


def synthetic_alert(run_id: str, now: datetime, *, ends_in: timedelta = timedelta(minutes=5)) -> dict:
    """The synthetic alert of `alerts --test`, shaped as Prometheus posts its alerts."""
    return {
        "labels": {"alertname": TEST_ALERTNAME, "target": TEST_TARGET, "severity": "info",
                   "test_run": run_id},
        "annotations": {
            "summary": "Test notification from the Foundry Local Chat Stack",
            "description": f"Sent by `{cmd('alerts --test')}` to prove that alerts reach you.",
            "runbook": TEST_RUNBOOK,
        },
        "startsAt": now.isoformat(),
        "endsAt": (now + ends_in).isoformat(),
    }


# -- the adapter ------------------------------------------------------------------------


class AlertmanagerUnavailable(StackError):
    """Alertmanager did not answer, or answered with an error. ``why`` is that fact
    alone (no fix), for callers that word their own ("status" must not say "run
    status")."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


class Alertmanager:
    """The few calls the stack makes; raises AlertmanagerUnavailable naming the fix."""

    def __init__(self, base_url: str, http: httpx.Client | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.http = http or httpx.Client(timeout=httpx.Timeout(10.0), trust_env=False)

    def _call(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            r = self.http.request(method, self.base + path, **kw)
        except httpx.HTTPError as err:
            why = f"does not answer {path} ({type(err).__name__})"
            raise AlertmanagerUnavailable(f"Alertmanager at {self.base} {why} — `{cmd('status')}`; "
                                          f"`{cmd('up')}` starts it", why) from None
        if r.status_code >= 400:
            why = f"answered {path} with HTTP {r.status_code}: {r.text.strip()[:200]}"
            raise AlertmanagerUnavailable(f"Alertmanager {why} — `{cmd('logs --service alertmanager')}`",
                                          why)
        return r

    def alerts(self) -> list[dict]:
        return self._call("GET", "/api/v2/alerts", params={"active": "true", "silenced": "true",
                                                          "inhibited": "true"}).json()

    def post(self, alerts: list[dict]) -> None:
        self._call("POST", "/api/v2/alerts", json=alerts)

    def counters(self) -> dict[str, Counters]:
        return counters(self._call("GET", "/metrics").text)

    def reload(self) -> None:
        self._call("POST", "/-/reload")


@dataclass(frozen=True)
class SendResult:
    kinds: tuple[str, ...]
    deliveries: tuple[Delivery, ...]
    seconds: float

    @property
    def delivered(self) -> bool:
        return bool(self.deliveries) and all(d.delivered for d in self.deliveries)


def send_test(am: Alertmanager, kinds: tuple[str, ...], *, deadline_s: float = TEST_DEADLINE_S,
              clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
              now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> SendResult:
    """Post the test alert, wait for Alertmanager's outcome per receiver kind, then
    resolve the alert (its resolved notice follows). ``kinds`` from enabled_receivers."""
    t0 = clock()
    before = am.counters()
    alert = synthetic_alert(uuid.uuid4().hex[:8], now())
    am.post([alert])
    try:
        while True:
            result = verdict(kinds, before, am.counters())
            if all(d.delivered is not None for d in result) or clock() - t0 >= deadline_s:
                break
            sleep(0.5)
    finally:
        am.post([{**alert, "endsAt": now().isoformat()}])
    final = tuple(d if d.delivered is not None else
                  Delivery(d.kind, False, f"no outcome within {deadline_s:.0f}s ({d.detail})")
                  for d in result)
    return SendResult(kinds, final, clock() - t0)


# -- what `invoke alerts` runs ------------------------------------------------------------


def for_stack(stack, *, timeout_s: float = 10.0) -> Alertmanager:
    """The stack's Alertmanager, at its published port (``stack``: a config.stack.Stack)."""
    from stackctl.config.settings import ALERTMANAGER

    return Alertmanager(stack.api_url(ALERTMANAGER.port_key),
                        httpx.Client(timeout=httpx.Timeout(timeout_s), trust_env=False))


def active(stack, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> list[AlertRow]:
    return alert_rows(for_stack(stack).alerts(), now())


# -- what `invoke status` shows ----------------------------------------------------------

STATUS_TIMEOUT_S = 3.0  # a hung Alertmanager costs status seconds, not the default 10


@dataclass(frozen=True)
class Listing:
    """The alerts as status shows them: Alertmanager's rows, or why it could not be
    asked (one line naming what to do; then ``rows`` is empty and means nothing)."""

    rows: tuple[AlertRow, ...] = ()
    unavailable: str = ""


def listing(stack, *, running: bool, am: Alertmanager | None = None,
            now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Listing:
    """Never raises: status must answer whatever state Alertmanager is in.
    ``running``: whether its container runs (status knows; not asked over HTTP then)."""
    from stackctl.config.settings import ALERTMANAGER

    logs = f"`{cmd(f'logs --service {ALERTMANAGER.name}')}`"
    if not running:
        return Listing(unavailable=f"{ALERTMANAGER.title} is not running, so the alerts firing are "
                                   f"not known — `{cmd('up')}` starts it")
    am = am or for_stack(stack, timeout_s=STATUS_TIMEOUT_S)
    try:
        return Listing(tuple(alert_rows(am.alerts(), now())))
    except AlertmanagerUnavailable as err:
        return Listing(unavailable=f"{ALERTMANAGER.title} at {am.base} {err.why}, so the alerts "
                                   f"firing are not known — {logs}")
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # not Alertmanager's v2 shape
        return Listing(unavailable=f"{ALERTMANAGER.title} at {am.base} answered /api/v2/alerts with "
                                   f"something unreadable ({type(err).__name__}) — {logs}")


@dataclass(frozen=True)
class DeliveryReport:
    """What `alerts --test` says: per kind delivered or why not; never a secret."""

    result: SendResult | None  # None: nobody to send to
    reasons: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.delivered

    def lines(self) -> list[str]:
        if self.result is None:
            return ["not sent: no receiver is configured, so alerts reach nobody — set "
                    "ALERT_WEBHOOK_URL, ALERT_SLACK_WEBHOOK_URL, ALERT_DISCORD_WEBHOOK_URL or "
                    "ALERT_EMAIL_TO (+ ALERT_EMAIL_FROM, ALERT_SMTP_SMARTHOST) in .env, "
                    f"then `{cmd('up')}`"]
        out = []
        for d in self.result.deliveries:
            why = self.reasons.get(d.kind)
            out.append(f"{d.kind}: {d.detail}" + (f" — last error: {why}" if why and not d.delivered else ""))
        verdict_ = "delivered" if self.ok else "NOT delivered"
        out.append(f"test alert {TEST_ALERTNAME} {verdict_} in {self.result.seconds:.1f}s; "
                   "resolved again (a resolved notice follows)")
        return out


def run_test(stack, *, deadline_s: float = TEST_DEADLINE_S) -> DeliveryReport:
    """`alerts --test`: the synthetic alert through the stack's Alertmanager to the
    receivers .env configures; on a failure the reason from its log, redacted."""
    from stackctl.alerting.render import config_is_current, enabled_receivers
    from stackctl.config.settings import ALERTMANAGER, SENSITIVE_KEYS

    kinds = enabled_receivers(stack.env)
    if not kinds:
        return DeliveryReport(None, {})
    if not config_is_current(stack):  # the test would prove the old receivers, not .env's
        raise StackError(f"Alertmanager runs an older config than .env describes — run "
                         f"`{cmd('up')}` first (it renders the config and reloads Alertmanager)",
                         exit_code=2)
    result = send_test(for_stack(stack), kinds, deadline_s=deadline_s)
    reasons: dict[str, str] = {}
    if not result.delivered:
        reasons = failure_reasons(_logs(stack, ALERTMANAGER.name), kinds,
                                  [stack.env.get(k, "") for k in SENSITIVE_KEYS])
    return DeliveryReport(result, reasons)


def _logs(stack, service: str) -> str:
    from stackctl.docker import engine

    try:
        client = engine.client()
        state = engine.services(client, stack.project).get(service)
        if state is None:
            return ""
        return client.containers.get(state.container).logs(tail=300).decode("utf-8", "replace")
    except Exception:  # the reason is a courtesy; the verdict stands without it
        return ""
