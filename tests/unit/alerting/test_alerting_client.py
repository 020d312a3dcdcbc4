"""`invoke alerts`: the views over Alertmanager's answers, the delivery verdict read
from its counters, the test-alert flow against an in-process Alertmanager API
(httpx.MockTransport), and that no secret ever reaches what is printed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from stackctl.alerting import client
from stackctl.alerting.client import (
    TEST_ALERTNAME,
    Alertmanager,
    Counters,
    DeliveryReport,
    SendResult,
    age_text,
    alert_lines,
    alert_rows,
    counters,
    failure_reasons,
    redact,
    send_test,
    verdict,
)
from stackctl.alerting.render import BASE_FILE, render
from stackctl.console import cmd
from stackctl.errors import StackError

NOW = datetime(2026, 12, 1, 12, 0, 0, 500000, tzinfo=UTC)  # alerts start at .123456789
TOKEN = "T0K3N-s3cr3t"


def am_alert(name, target, minutes, *, state="active", inhibited=False, silenced=False, **notes):
    return {"labels": {"alertname": name, "target": target, "severity": "critical"},
            "annotations": notes,
            "startsAt": (NOW - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S") + ".123456789Z",
            "status": {"state": state, "inhibitedBy": ["x"] if inhibited else [],
                       "silencedBy": ["y"] if silenced else []}}


def test_rows_are_oldest_first_with_age_state_and_runbook():
    rows = alert_rows([am_alert("FoundryTTFTHigh", "foundry", 3, state="suppressed", inhibited=True),
                       am_alert("FoundryLocalDown", "foundry", 130, summary="down",
                                runbook="README.md#troubleshooting - run `invoke doctor`")], NOW)
    assert [r.name for r in rows] == ["FoundryLocalDown", "FoundryTTFTHigh"]
    assert alert_lines(rows) == [
        "FoundryLocalDown on foundry [critical] — active, for 2h 10m: down",
        "    runbook: README.md#troubleshooting - run `invoke doctor`",
        "FoundryTTFTHigh on foundry [critical] — suppressed (inhibited), for 3m",
    ]
    assert alert_lines([]) == ["no active alerts"]


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59.9, "59s"), (60, "1m"), (3599, "59m"),
                                               (3660, "1h 01m"), (90061, "1d 01h")])
def test_age_text(seconds, text):
    assert age_text(seconds) == text


METRICS_BEFORE = """
# TYPE alertmanager_notifications_total counter
alertmanager_notifications_total{integration="webhook"} 3
alertmanager_notifications_total{integration="email"} 1
# TYPE alertmanager_notifications_failed_total counter
alertmanager_notifications_failed_total{integration="webhook",reason="other"} 1
alertmanager_notifications_failed_total{integration="webhook",reason="serverError"} 1
# TYPE alertmanager_notification_requests_total counter
alertmanager_notification_requests_total{integration="webhook"} 5
# TYPE alertmanager_notification_requests_failed_total counter
alertmanager_notification_requests_failed_total{integration="webhook"} 2
"""


def test_counters_sum_over_other_labels():
    c = counters(METRICS_BEFORE)
    assert c["webhook"] == Counters(notifications=3, notifications_failed=2, requests=5, requests_failed=2)
    assert c["email"] == Counters(notifications=1)
    assert "slack" not in c


def test_verdict_delivered_failed_retrying_and_not_sent():
    before = {"webhook": Counters(3, 2, 5, 2), "slack": Counters(), "email": Counters()}
    after = {"webhook": Counters(4, 2, 6, 2),       # one request succeeded
             "slack": Counters(1, 1, 3, 3),         # given up after 3 failed requests
             "email": Counters(1, 0, 1, 1)}         # failing, still retrying
    got = verdict(("webhook", "slack", "email", "discord"), before, after)
    assert [(d.kind, d.delivered, d.detail) for d in got] == [
        ("webhook", True, "delivered"),
        ("slack", False, "gave up after 3 failed request(s)"),
        ("email", None, "1 failed request(s), retrying"),
        ("discord", None, "not sent yet"),
    ]


def test_redact_hides_the_value_and_the_url_path_and_query():
    url = f"https://hooks.example.com/services/{TOKEN}?key={TOKEN}x"
    text = f'Post "{url}": dial tcp: refused; path /services/{TOKEN}?key={TOKEN}x; pw hunter2-pw'
    out = redact(text, [url, "hunter2-pw", ""])
    assert TOKEN not in out and "hunter2-pw" not in out
    assert "hooks.example.com" not in out or "<redacted>" in out
    assert out.count("<redacted>") >= 3


def test_failure_reasons_take_the_last_error_per_kind_redacted():
    url = f"http://host.docker.internal:9/hook/{TOKEN}"
    log = "\n".join([
        'level=warn component=dispatcher receiver=stack-notify integration=webhook[0] '
        'msg="Notify attempt failed, will retry later" attempts=1 err="old"',
        'level=warn component=dispatcher receiver=stack-notify integration=webhook[0] '
        f'msg="Notify attempt failed, will retry later" attempts=2 err="Post \\"{url}\\": dial tcp '
        '172.17.0.1:9: connect: connection refused"',
        'level=info msg="Completed loading of configuration file"',
    ])
    reasons = failure_reasons(log, ("webhook", "slack"), [url])
    assert reasons == {"webhook": 'Post "<redacted>": dial tcp 172.17.0.1:9: connect: connection refused'}


class FakeAlertmanager:
    """Alertmanager's API as the client uses it; ``deliver`` decides each outcome."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome
        self.posted: list[list[dict]] = []
        self.c = {"webhook": Counters(2, 0, 2, 0)}
        self.polls = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/alerts" and request.method == "POST":
            self.posted.append(json.loads(request.content))
            return httpx.Response(200)
        if request.url.path == "/metrics":
            self.polls += 1
            if self.posted and self.polls == 3:  # the outcome shows on the third scrape
                w = self.c["webhook"]
                self.c["webhook"] = (Counters(w.notifications + 1, 0, w.requests + 1, 0)
                                     if self.outcome == "ok" else
                                     Counters(w.notifications + 1, 1, w.requests + 2, 2)
                                     if self.outcome == "fail" else w)
            lines = [f'alertmanager_{n}{{integration="webhook"}} {v}' for n, v in (
                ("notifications_total", self.c["webhook"].notifications),
                ("notifications_failed_total", self.c["webhook"].notifications_failed),
                ("notification_requests_total", self.c["webhook"].requests),
                ("notification_requests_failed_total", self.c["webhook"].requests_failed))]
            return httpx.Response(200, text="\n".join(lines) + "\n")
        if request.url.path == "/api/v2/status":
            raise AssertionError("the client must never fetch the config (it holds secrets)")
        return httpx.Response(404, text="not found")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


@pytest.mark.parametrize(("outcome", "delivered", "detail"), [
    ("ok", True, "delivered"),
    ("fail", False, "gave up after 2 failed request(s)"),
    ("silent", False, "no outcome within 5s (not sent yet)"),
])
def test_send_test_posts_waits_for_the_outcome_and_resolves(outcome, delivered, detail):
    fake, clock = FakeAlertmanager(outcome), Clock()
    am = Alertmanager("http://am", httpx.Client(transport=httpx.MockTransport(fake.handler)))
    res = send_test(am, ("webhook",), deadline_s=5, clock=clock, sleep=clock.sleep, now=lambda: NOW)
    assert res.delivered is delivered
    assert [(d.kind, d.detail) for d in res.deliveries] == [("webhook", detail)]
    (fired,), (resolved,) = fake.posted
    assert fired["labels"]["alertname"] == TEST_ALERTNAME
    assert fired["annotations"]["runbook"]
    assert resolved["labels"] == fired["labels"] and resolved["endsAt"] == NOW.isoformat()


def test_an_unreachable_alertmanager_is_one_line_with_the_fix():
    def refuse(request):
        raise httpx.ConnectError("refused")
    am = Alertmanager("http://127.0.0.1:1", httpx.Client(transport=httpx.MockTransport(refuse)))
    with pytest.raises(StackError) as err:
        am.alerts()
    assert str(err.value) == ("Alertmanager at http://127.0.0.1:1 does not answer /api/v2/alerts "
                              f"(ConnectError) — `{cmd('status')}`; `{cmd('up')}` starts it")


def test_report_lines_name_each_kind_and_never_a_secret():
    res = SendResult(("webhook", "slack"), (client.Delivery("webhook", True, "delivered"),
                                            client.Delivery("slack", False, "gave up after 1 failed request(s)")),
                     2.0)
    rep = DeliveryReport(res, {"slack": "Post \"<redacted>\": 404", "webhook": "old error"})
    assert not rep.ok
    assert rep.lines() == [
        "webhook: delivered",
        'slack: gave up after 1 failed request(s) — last error: Post "<redacted>": 404',
        "test alert FoundryStackTest NOT delivered in 2.0s; resolved again (a resolved notice follows)",
    ]
    nobody = DeliveryReport(None, {})
    assert not nobody.ok and "ALERT_WEBHOOK_URL" in nobody.lines()[0] and cmd("up") in nobody.lines()[0]


def test_the_test_alert_has_its_own_fast_route_to_the_same_receivers():
    doc = yaml.safe_load(render({"ALERT_WEBHOOK_URL": "http://127.0.0.1:9/x"}))
    (route,) = doc["route"]["routes"]
    assert route["matchers"] == [f'alertname="{TEST_ALERTNAME}"']
    assert route["group_wait"] == "0s" and "receiver" not in route  # inherits the configured one
    assert TEST_ALERTNAME in Path(BASE_FILE).read_text()
