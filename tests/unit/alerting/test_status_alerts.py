"""`invoke status` shows the alerts firing: the section under the table is a pure
rendering of StatusReport (the same lines `invoke alerts` prints), and the
listing behind it never raises, whatever Alertmanager does (an in-process
Alertmanager API through httpx.MockTransport)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from stackctl.alerting.client import Alertmanager, Listing, alert_rows, listing
from stackctl.config.settings import ALERTMANAGER, PROMETHEUS
from stackctl.config.stack import Stack
from stackctl.console import Reporter, cmd
from stackctl.docker.engine import ServiceState
from stackctl.lifecycle.ops import StatusReport, alert_section, status_table

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
RUNBOOK = "README.md#troubleshooting - run `invoke doctor` (Foundry discovery and reachability from a container)"
AM_URL = "http://127.0.0.1:19093"


def am_alert(name, minutes, *, severity="critical", inhibited=False, **notes):
    return {"labels": {"alertname": name, "target": "foundry", "severity": severity},
            "annotations": notes,
            "startsAt": (NOW - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "status": {"state": "suppressed" if inhibited else "active",
                       "inhibitedBy": ["x"] if inhibited else [], "silencedBy": []}}


DOWN = am_alert("FoundryLocalDown", 3, summary="Foundry Local foundry is unreachable", runbook=RUNBOOK)
SYMPTOM = am_alert("FoundryTTFTHigh", 1, severity="warning", inhibited=True, summary="Slow first token")


def state(name, status="running", health="healthy"):
    return ServiceState(name, f"p-{name}-1", status, health, "img", 0, ())


HEALTHY_PROMETHEUS = state(PROMETHEUS.name)


def report(alerts: Listing | None, *, prometheus: ServiceState | None = HEALTHY_PROMETHEUS) -> StatusReport:
    stack = Stack(Path("/nonexistent"), Path("/nonexistent/.env"),
                  {"COMPOSE_PROJECT_NAME": "p", "STACK_BIND_ADDRESS": "127.0.0.1"})
    services = {PROMETHEUS.name: prometheus} if prometheus else {}
    return StatusReport(stack, services, {}, None, "not found", alerts)


def test_firing_alerts_are_listed_with_severity_age_summary_and_runbook():
    rows = tuple(alert_rows([SYMPTOM, DOWN], NOW))
    assert alert_section(report(Listing(rows))) == [
        "alerts firing (2):",
        "  FoundryLocalDown on foundry [critical] — active, for 3m: Foundry Local foundry is unreachable",
        f"      runbook: {RUNBOOK}",
        "  FoundryTTFTHigh on foundry [warning] — suppressed (inhibited), for 1m: Slow first token",
    ]


def test_none_firing_says_so():
    assert alert_section(report(Listing())) == ["alerts: no alerts firing"]


def test_an_unknown_answer_is_one_line_and_an_unasked_one_nothing():
    for prom in (HEALTHY_PROMETHEUS, None):  # a stack that is down: still one line
        assert alert_section(report(Listing(unavailable="Alertmanager is not running"), prometheus=prom)) == [
            "alerts: Alertmanager is not running"]
    assert alert_section(report(None)) == []


@pytest.mark.parametrize("prom", [None, state(PROMETHEUS.name, "exited", "none"),
                                  state(PROMETHEUS.name, "running", "unhealthy")])
def test_a_prometheus_that_evaluates_nothing_is_no_all_clear(prom):
    lines = alert_section(report(Listing(), prometheus=prom))
    assert lines[0] == "alerts: no alerts firing"
    (warning,) = lines[1:]
    assert warning.startswith(f"alerts: {PROMETHEUS.title} is {'absent' if prom is None else prom.state}")
    assert "alert can be missing here" in warning and cmd("up") in warning


def test_a_multi_line_or_markup_annotation_stays_one_line_printed_as_text():
    hostile = am_alert("Odd", 0, summary="first line\n  second [red]line[/red]\n", runbook="a\nb")
    lines = alert_section(report(Listing(tuple(alert_rows([hostile], NOW)))))
    assert lines[1:] == ["  Odd on foundry [critical] — active, for 0s: first line second [red]line[/red]",
                         "      runbook: a b"]
    out = Reporter(Console(record=True, width=300, color_system=None))
    for line in lines:
        out.info(line)
    assert "second [red]line[/red]" in out.console.export_text()


# -- the listing behind it: never raises ----------------------------------------------------


def am_answering(handler) -> Alertmanager:
    return Alertmanager(AM_URL, httpx.Client(transport=httpx.MockTransport(handler)))


def test_the_listing_is_alertmanagers_active_silenced_and_inhibited_alerts():
    asked = []

    def handler(request):
        asked.append(request.url)
        return httpx.Response(200, json=[DOWN, SYMPTOM])
    got = listing(None, running=True, am=am_answering(handler), now=lambda: NOW)
    assert not got.unavailable
    assert [r.name for r in got.rows] == ["FoundryLocalDown", "FoundryTTFTHigh"]
    (url,) = asked
    assert url.path == "/api/v2/alerts"
    assert dict(url.params) == {"active": "true", "silenced": "true", "inhibited": "true"}


def test_a_stopped_alertmanager_is_not_asked():
    def handler(request):
        raise AssertionError("asked a stopped Alertmanager")
    got = listing(None, running=False, am=am_answering(handler))
    assert got.rows == ()
    assert got.unavailable == (f"{ALERTMANAGER.title} is not running, so the alerts firing are not known "
                               f"— `{cmd('up')}` starts it")


def refuse(request):
    raise httpx.ConnectError("refused")


def hang(request):
    raise httpx.ReadTimeout("timed out")


@pytest.mark.parametrize(("handler", "why"), [
    (refuse, "does not answer /api/v2/alerts (ConnectError)"),
    (hang, "does not answer /api/v2/alerts (ReadTimeout)"),
    (lambda r: httpx.Response(503, text="not ready\n"), "answered /api/v2/alerts with HTTP 503: not ready"),
])
def test_an_unreachable_or_failing_alertmanager_is_one_line_never_an_error(handler, why):
    got = listing(None, running=True, am=am_answering(handler))
    assert got.unavailable == (f"{ALERTMANAGER.title} at {AM_URL} {why}, so the alerts firing are not known "
                               f"— `{cmd(f'logs --service {ALERTMANAGER.name}')}`")
    assert "\n" not in got.unavailable and cmd("status") not in got.unavailable


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b'{"alerts": []}', b'[{"labels": {}}]',
                                  b'[{"startsAt": "yesterday"}]', b"[42]"])
def test_an_answer_not_shaped_like_alertmanagers_is_one_line_never_an_error(body):
    got = listing(None, running=True, am=am_answering(lambda r: httpx.Response(200, content=body)))
    assert got.rows == ()
    assert got.unavailable.startswith(f"{ALERTMANAGER.title} at {AM_URL} answered /api/v2/alerts "
                                      "with something unreadable (")


def test_the_table_still_renders_beside_the_section():
    console = Console(record=True, width=300, color_system=None)
    console.print(status_table(report(Listing())))
    assert "foundry (host)" in console.export_text()
