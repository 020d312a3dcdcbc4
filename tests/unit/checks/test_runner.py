"""The runner, the printed report and the JSON report: what a user sees."""

from __future__ import annotations

import json

import httpx
import pytest

from stackctl.checks import browser, runner, smoke
from stackctl.checks.runner import FAIL, OK, SKIP, Check, Failed, Result, Skipped


def _ok(ctx):
    ctx["ran"].append("ok")
    return "all good"


def _broken(ctx):
    raise Failed("the widget is gone", "`invoke up`")


def _crash(ctx):
    raise KeyError("data")


def _skip(ctx):
    raise Skipped("not running")


def _clock():
    t = iter(range(100))
    return lambda: float(next(t))


def test_runner_keeps_order_and_turns_every_exception_into_a_result():
    checks = [Check("a", _ok), Check("b", _broken), Check("c", _crash), Check("d", _skip),
              Check("e", _ok, needs=lambda ctx: "b is broken")]
    ctx = {"ran": []}
    rep = runner.run_checks(checks, ctx, clock=_clock())
    assert [(r.name, r.status) for r in rep.results] == [
        ("a", OK), ("b", FAIL), ("c", FAIL), ("d", SKIP), ("e", SKIP)]
    assert ctx["ran"] == ["ok"]  # e was skipped, not run
    assert rep.results[1] == Result("b", FAIL, 1.0, "the widget is gone", "`invoke up`")
    assert rep.results[2].detail == "KeyError: 'data'" and "./stack doctor" in rep.results[2].fix
    assert rep.results[4].detail == "skipped: b is broken"
    assert not rep.ok and rep.exit_code == 1 and rep.first_failure.name == "b"


def test_skips_alone_do_not_fail_the_run():
    rep = runner.run_checks([Check("a", _ok), Check("g", _skip)], {"ran": []})
    assert rep.ok and rep.exit_code == 0 and rep.first_failure is None


def _report() -> runner.Report:
    return runner.Report((
        Result("foundry", OK, 0.12, "serves tiny"),
        Result("exporter", FAIL, 0.01, "the exporter does not answer [bold]", "`invoke logs exporter`"),
        Result("grafana", SKIP, 0.0, "skipped: not running"),
    ), 1.234)


def test_render_prints_verdict_time_reason_fix_and_total():
    lines = smoke.render(_report())
    assert lines == [
        "✓ foundry    0.12s  serves tiny",
        "✗ exporter   0.01s  the exporter does not answer [bold]",
        "            fix: `invoke logs exporter`",
        "– grafana    0.00s  skipped: not running",
        "smoke FAILED in 1.2s: 1 check(s) failed; first broken link: exporter — `invoke logs exporter`",
    ]


def test_render_with_color_escapes_brackets_in_details():
    lines = smoke.render(_report(), color=True)
    assert lines[0].startswith("[green]✓[/] ") and lines[1].startswith("[red]✗[/] ")
    assert "\\[bold]" in lines[1]


def test_passing_report_says_so_with_its_time():
    rep = runner.Report((Result("foundry", OK, 0.5, "fine"),), 3.21)
    assert smoke.render(rep)[-1] == "smoke passed in 3.2s"


def test_json_report_is_machine_readable():
    data = json.loads(json.dumps(_report().as_dict()))
    assert data["ok"] is False and data["first_failure"] == "exporter" and data["seconds"] == 1.234
    assert [c["status"] for c in data["checks"]] == ["ok", "fail", "skip"]
    assert data["checks"][1] == {"name": "exporter", "status": "fail", "seconds": 0.01,
                                 "detail": "the exporter does not answer [bold]",
                                 "fix": "`invoke logs exporter`"}


def test_whole_run_against_fakes_lists_every_check_in_the_issue_order(stack, fake, monkeypatch):
    from stackctl.foundry import view as foundry_link
    from tests.unit.checks.fakes import view

    monkeypatch.setattr(foundry_link, "current", lambda s: (view(), None))
    rep = smoke.run_smoke(stack, http=httpx.Client(transport=httpx.MockTransport(fake)))
    assert [r.name for r in rep.results] == ["foundry", "open-webui", "sign-in", "connection", "models",
                                             "chat", "chat-stream", "knowledge", "exporter", "prometheus", "grafana",
                                             "alertmanager"]
    assert rep.ok, smoke.render(rep)


# -- browser verdicts (pure) ------------------------------------------------------


def _frame(kind="response:completion", **data):
    return "42" + json.dumps(["events", {"chat_id": "c", "message_id": "m", "data": {"type": kind, "data": data}}])


def test_parse_frame_reads_open_webui_socketio_events():
    assert browser.parse_frame(_frame(content="he")) == browser.StreamEvent("response:completion", False, None)
    assert browser.parse_frame(_frame("chat:completion", done=True)).done
    err = browser.parse_frame(_frame("chat:completion", error={"content": "too long"}))
    assert err.error == "too long"
    for other in ("40", "2", '42["events",{"data":{"type":"chat:title"}}]', "42[not json", b"3"):
        assert browser.parse_frame(other) is None


@pytest.mark.parametrize(("events", "ok", "words"), [
    ([("r", False, None)] * 5 + [("c", True, None)], True, ""),
    ([("r", False, None)] * 5, False, "never finished"),
    ([("c", True, None)], False, "not streamed"),
    ([("c", False, "exceeds the model's maximum context length")], False, "showed an error"),
])
def test_browser_stream_verdict(events, ok, words):
    got_ok, why = browser.reply_verdict([browser.StreamEvent(*e) for e in events])
    assert got_ok is ok and words in why


def test_a_warned_check_is_a_warning_that_does_not_fail_the_run():
    from stackctl.checks.runner import WARN, Warned

    def later(ctx):
        raise Warned("not proven yet", "rerun later")

    rep = runner.run_checks([Check("w", later)], {})
    (r,) = rep.results
    assert (r.status, r.detail, r.fix) == (WARN, "not proven yet", "rerun later")
    assert rep.ok and rep.exit_code == 0
