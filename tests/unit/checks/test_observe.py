"""Exporter / Prometheus / Grafana verdicts over what those services answer."""

from __future__ import annotations

import httpx
import pytest

from stackctl.checks import observe as smoke_observe
from stackctl.checks import runner
from stackctl.checks.runner import FAIL, OK, SKIP, Failed, Warned
from stackctl.config.stack import ROOT
from tests.unit.checks.fakes import metrics, targets

NOW = 1_000_000.0


def test_canary_max_age_comes_from_the_stacks_exporter_config():
    text = (ROOT / smoke_observe.EXPORTER_CONFIG).read_text()
    # two canary intervals plus the probe timeout; the stack's canary runs every 60s
    assert smoke_observe.canary_max_age(text) == pytest.approx(130.0)
    assert smoke_observe.canary_max_age("defaults: {interval: 10s}\ntargets:\n"
                                        "  - {name: f, kind: foundry, timeout: 500ms}\n") == pytest.approx(20.5)
    assert smoke_observe.canary_max_age(None) == pytest.approx(70.0)


def test_exporter_up_with_a_fresh_successful_canary_passes():
    detail = smoke_observe.exporter_verdict(metrics(canary_age=12, now=NOW), NOW, 130)
    assert 'foundry_up{target="foundry"}=1' in detail and "12s ago" in detail


@pytest.mark.parametrize(("text", "words", "fix"), [
    (metrics(up=0, now=NOW), "foundry_up=0 for foundry", "./stack doctor"),
    (metrics(canary_age=400, now=NOW), "ran 400s ago (stale after 130s)", "./stack logs exporter"),
    (metrics(canary_ok=0, now=NOW), "last chat canary against foundry failed", "./stack doctor"),
    ("# TYPE foundry_up gauge\n", "no Foundry Local target", "config.stack.yml"),
    ('# TYPE foundry_up gauge\nfoundry_up{target="f",kind="foundry"} 1\n', "not run a chat canary", "rerun"),
])
def test_exporter_verdict_names_the_problem_and_fix(text, words, fix):
    with pytest.raises(Failed) as err:
        smoke_observe.exporter_verdict(text, NOW, 130)
    assert words in err.value.detail and fix in err.value.fix


def test_exporter_not_answering_fails_with_the_restart_fix(make_ctx, fake):
    del fake.routes[("9101", "/metrics")]
    with pytest.raises(Failed) as err:
        smoke_observe.check_exporter(make_ctx())
    assert "does not answer" in err.value.detail and "./stack logs exporter" in err.value.fix


def test_targets_and_rules_verdicts():
    assert smoke_observe.targets_verdict(targets(("a", "up"), ("b", "up"))) == (None, None)
    problem, _ = smoke_observe.targets_verdict(targets(("prometheus", "up"), ("foundry-exporter", "down")))
    assert "foundry-exporter" in problem and "connection refused" in problem
    assert smoke_observe.targets_verdict(targets(("a", "unknown"))) == (None, "not scraped yet: a")
    assert smoke_observe.targets_verdict({"data": {}})[0] == "Prometheus has no scrape targets"
    assert smoke_observe.rules_verdict({"data": {"groups": []}}) == ("Prometheus has loaded no rules", [])
    bad = {"data": {"groups": [{"rules": [{"name": "r", "type": "recording", "health": "err",
                                           "lastError": "bad expr"}]}]}}
    assert smoke_observe.rules_verdict(bad)[0] == "rules failing: r: bad expr"


def test_prometheus_healthy_passes_naming_a_recording_rule_with_data(make_ctx):
    detail = smoke_observe.check_prometheus(make_ctx(), sleep=_no_sleep)
    assert "all targets up" in detail and "target_kind:foundry_up:avg_over_time5m" in detail


def test_prometheus_down_fails_with_its_fix(make_ctx, fake):
    for key in [k for k in fake.routes if k[0] == "9090"]:
        del fake.routes[key]
    with pytest.raises(Failed) as err:
        smoke_observe.check_prometheus(make_ctx(), sleep=_no_sleep)
    assert "Prometheus at" in err.value.detail and "./stack logs prometheus" in err.value.fix


def test_exporter_target_down_in_prometheus_points_at_the_exporter(make_ctx, fake):
    fake.routes[("9090", "/api/v1/targets")] = lambda r: httpx.Response(200, json=targets(
        ("prometheus", "up"), ("foundry-exporter", "down")))
    with pytest.raises(Failed) as err:
        smoke_observe.check_prometheus(make_ctx(), sleep=_no_sleep)
    assert "./stack logs exporter" in err.value.fix


def test_a_just_started_prometheus_is_waited_for_within_a_deadline(make_ctx, fake):
    answers = iter([targets(("foundry-exporter", "unknown"))] * 3)
    fake.routes[("9090", "/api/v1/targets")] = lambda r: httpx.Response(
        200, json=next(answers, targets(("foundry-exporter", "up"))))
    clock, sleeps = _Clock(), []
    detail = smoke_observe.check_prometheus(make_ctx(), clock=clock, sleep=lambda s: (sleeps.append(s), clock.tick(s)))
    assert "all targets up" in detail and len(sleeps) == 3


def test_no_recording_data_after_the_deadline_fails_saying_to_rerun(make_ctx, fake):
    fake.routes[("9090", "/api/v1/query")] = lambda r: httpx.Response(200, json={"data": {"result": []}})
    clock = _Clock()
    with pytest.raises(Failed) as err:
        smoke_observe.check_prometheus(make_ctx(), settle=5, clock=clock, sleep=clock.tick)
    assert "no recording rule has data yet" in err.value.detail and "rerun" in err.value.fix


def test_grafana_is_skipped_when_not_in_the_profiles(make_ctx):
    res = runner.run_checks(smoke_observe.CHECKS, make_ctx())
    grafana = {r.name: r for r in res.results}["grafana"]
    assert grafana.status == SKIP and grafana.detail.startswith("skipped: not running")
    assert res.ok


def _grafana(fake, ds_status="OK", uids=("chats", "foundry-local", "stack-health"), code=200):
    fake.routes[("3001", "/api/health")] = lambda r: httpx.Response(200, json={"database": "ok"})
    fake.routes[("3001", "/api/datasources/uid/foundry-prometheus/health")] = lambda r: httpx.Response(
        code, json={"status": ds_status, "message": "Successfully queried the Prometheus API."})
    fake.routes[("3001", "/api/search")] = lambda r: httpx.Response(200, json=[{"uid": u} for u in uids])


def test_grafana_health_datasource_and_dashboards(make_ctx, fake):
    _grafana(fake)
    detail = smoke_observe.check_grafana(make_ctx(COMPOSE_PROFILES="grafana"))
    assert "datasource foundry-prometheus OK" in detail and "foundry-local" in detail


@pytest.mark.parametrize(("kw", "words"), [
    ({"ds_status": "ERROR", "code": 400}, "datasource foundry-prometheus is not working"),
    ({"uids": ("chats", "foundry-local")}, "dashboards not provisioned: stack-health"),
    ({"code": 401}, "rejected GRAFANA_ADMIN_USER/PASSWORD"),
])
def test_grafana_failures(make_ctx, fake, kw, words):
    _grafana(fake, **kw)
    res = runner.run_checks(smoke_observe.CHECKS[2:3], make_ctx(COMPOSE_PROFILES="grafana"))
    (r,) = res.results
    assert r.status == FAIL and words in r.detail and r.fix


def test_grafana_in_the_profiles_but_not_answering_fails(make_ctx):
    (r,) = runner.run_checks(smoke_observe.CHECKS[2:3], make_ctx(COMPOSE_PROFILES="grafana")).results
    assert r.status == FAIL and "does not answer" in r.detail and "./stack logs grafana" in r.fix


def test_observability_checks_all_pass_on_a_healthy_fake(make_ctx):
    res = runner.run_checks(smoke_observe.CHECKS[:2], make_ctx())
    assert [r.status for r in res.results] == [OK, OK]


def test_alertmanager_healthy_and_fed_by_prometheus(make_ctx):
    detail = smoke_observe.check_alertmanager(make_ctx())
    assert detail == ("http://127.0.0.1:9093 healthy; Prometheus sends its alerts to "
                      "http://alertmanager:9093/api/v2/alerts")


def test_alertmanager_not_answering_fails_with_its_fix(make_ctx, fake):
    del fake.routes[("9093", "/-/healthy")]
    (r,) = runner.run_checks(smoke_observe.CHECKS[3:], make_ctx()).results
    assert (r.name, r.status) == ("alertmanager", FAIL)
    assert "does not answer" in r.detail and "logs alertmanager" in r.fix


@pytest.mark.parametrize(("payload", "words"), [
    ({"data": {"activeAlertmanagers": [], "droppedAlertmanagers": []}},
     "Prometheus sends alerts to no Alertmanager; expected alertmanager:9093"),
    ({"data": {"activeAlertmanagers": [{"url": "http://elsewhere:9093/api/v2/alerts"}],
               "droppedAlertmanagers": [{"url": "http://alertmanager:9093/api/v2/alerts"}]}},
     "Prometheus sends alerts to http://elsewhere:9093/api/v2/alerts (dropped: "
     "http://alertmanager:9093/api/v2/alerts); expected alertmanager:9093"),
])
def test_prometheus_not_sending_to_the_stacks_alertmanager_fails(make_ctx, fake, payload, words):
    fake.routes[("9090", "/api/v1/alertmanagers")] = lambda r: httpx.Response(200, json=payload)
    with pytest.raises(Failed) as err:
        smoke_observe.check_alertmanager(make_ctx())
    assert err.value.detail == words and "prometheus.yml" in err.value.fix


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def tick(self, s: float) -> None:
        self.t += s


def _no_sleep(_s: float) -> None:
    raise AssertionError("a settled Prometheus must not be waited for")


def test_right_after_foundry_came_back_an_old_up0_is_a_warning_not_a_broken_link():
    """Issue: for ~90 s after a fix smoke said the exporter "cannot reach Foundry Local
    from its container" — it had only not probed since. Smoke reached Foundry at NOW-0.5;
    every exporter probe is older, so the verdict is a warning that says so."""
    text = metrics(up=0, now=NOW - 30)  # the exporter's last probes ran 31 s ago and more
    with pytest.raises(Warned) as err:
        smoke_observe.exporter_verdict(text, NOW, 130, back_since=NOW - 0.5)
    assert "has simply not probed since" in err.value.detail and "smoke" in err.value.fix


def test_an_up0_from_a_probe_after_smoke_reached_foundry_is_still_a_failure():
    text = metrics(up=0, now=NOW)  # probed 1 s ago, after smoke reached Foundry 5 s ago
    with pytest.raises(Failed) as err:
        smoke_observe.exporter_verdict(text, NOW, 130, back_since=NOW - 5)
    assert not isinstance(err.value, Warned) and "foundry_up=0" in err.value.detail


def test_a_failed_canary_older_than_smokes_own_answer_is_a_warning():
    """Seen after `up` re-created the gateway: the canary that ran during the swap failed,
    smoke's own chats (later) work; the exporter simply has not run it since."""
    text = metrics(canary_age=15, canary_ok=0, now=NOW)
    with pytest.raises(Warned) as err:
        smoke_observe.exporter_verdict(text, NOW, 130, back_since=NOW - 5)
    assert "before smoke reached Foundry Local" in err.value.detail and "smoke" in err.value.fix


def test_a_failed_canary_after_smokes_own_answer_is_still_a_failure():
    text = metrics(canary_age=2, canary_ok=0, now=NOW)
    with pytest.raises(Failed) as err:
        smoke_observe.exporter_verdict(text, NOW, 130, back_since=NOW - 5)
    assert not isinstance(err.value, Warned) and "failed (2s ago)" in err.value.detail


def test_smoke_waits_for_the_exporters_next_probe_and_then_believes_it(make_ctx, fake):
    """Not probed since Foundry came back: smoke re-reads /metrics until a probe newer
    than its own answer arrives (bounded), and passes once the exporter sees Foundry up."""
    pages = [metrics(up=0, now=NOW - 30), metrics(up=0, now=NOW - 30), metrics(up=1, now=NOW)]
    fake.routes[("9101", "/metrics")] = lambda r: httpx.Response(200, text=pages.pop(0) if len(pages) > 1 else pages[0])
    ctx = make_ctx()
    ctx.notes["foundry_answered_at"] = NOW - 0.5
    ticks = iter(range(100))
    detail = smoke_observe.check_exporter(ctx, now=lambda: NOW, clock=lambda: float(next(ticks)),
                                          sleep=lambda s: None)
    assert "foundry_up" in detail and len(pages) == 1


def test_smoke_gives_up_waiting_with_the_warning(make_ctx, fake):
    fake.routes[("9101", "/metrics")] = lambda r: httpx.Response(200, text=metrics(up=0, now=NOW - 30))
    ctx = make_ctx()
    ctx.notes["foundry_answered_at"] = NOW - 0.5
    ticks = iter(range(100))
    with pytest.raises(Warned):
        smoke_observe.check_exporter(ctx, now=lambda: NOW, settle=5, clock=lambda: float(next(ticks)),
                                     sleep=lambda s: None)


def _yielding(text: str, skip_age: float, target: str = "foundry") -> str:
    """The exporter's page plus its canary-skip stamp (name from the exporter's declaration)."""
    name = smoke_observe.LAST_SKIP_TIMESTAMP
    return text + f"# TYPE {name} gauge\n{name}{{target=\"{target}\"}} {NOW - skip_age}\n"


def test_a_canary_yielding_to_users_chats_is_not_a_stuck_probe_loop():
    """Issue: while users chat longer than max_age the canary skips every round and its
    stamp stops; smoke said "the probe loop is stuck". A recent skip stamp means it yields."""
    text = _yielding(metrics(canary_age=400, now=NOW), skip_age=20)
    detail = smoke_observe.exporter_verdict(text, NOW, 130)
    assert "canary yielding to users' chats (last skip 20s ago)" in detail
    assert "stuck" not in detail and 'foundry_up{target="foundry"}=1' in detail


@pytest.mark.parametrize(("skip_age", "target"), [(200, "foundry"), (20, "other")])
def test_an_old_skip_or_another_targets_skip_still_means_stuck(skip_age, target):
    text = _yielding(metrics(canary_age=400, now=NOW), skip_age=skip_age, target=target)
    with pytest.raises(Failed) as err:
        smoke_observe.exporter_verdict(text, NOW, 130)
    assert not isinstance(err.value, Warned) and "the probe loop is stuck" in err.value.detail


def test_a_yielding_canary_whose_last_run_failed_is_a_warning_not_a_stuck_loop():
    text = _yielding(metrics(canary_age=400, canary_ok=0, now=NOW), skip_age=5)
    with pytest.raises(Warned) as err:
        smoke_observe.exporter_verdict(text, NOW, 130)
    assert "failed (400s ago)" in err.value.detail and "last skip 5s ago" in err.value.detail
    assert "stuck" not in err.value.detail and "./stack doctor" in err.value.fix


def _scraped(payload: dict, job: str, when: str) -> dict:
    for t in payload["data"]["activeTargets"]:
        if t["labels"]["job"] == job:
            t["lastScrape"] = when
    return payload


BEFORE, AFTER = "2026-12-02T04:10:00.123456789Z", "2026-12-02T04:10:20.5Z"
CHECK_BEGAN = 1796184610.5  # 2026-12-02T04:10:10.5Z


def test_a_target_down_at_a_scrape_before_the_check_is_pending_not_a_problem():
    """`up` re-creates the gateway; Prometheus may have scraped it while it was gone. That
    scrape is older than the check: its next scrape decides (seen in CI: smoke right after
    `up` failed on it)."""
    assert smoke_observe.scraped_at({"lastScrape": BEFORE}) == pytest.approx(1796184600.123457)
    assert smoke_observe.scraped_at({"lastScrape": "0001-01-01T00:00:00Z"}) is None
    old = _scraped(targets(("prometheus", "up"), ("gateway", "down")), "gateway", BEFORE)
    assert smoke_observe.targets_verdict(old, CHECK_BEGAN) == (
        None, "gateway (down at its last scrape, before this check)")
    problem, _ = smoke_observe.targets_verdict(old)  # no start given: down is down
    assert problem.startswith("Prometheus target down: gateway")
    new = _scraped(targets(("prometheus", "up"), ("gateway", "down")), "gateway", AFTER)
    problem, _ = smoke_observe.targets_verdict(new, CHECK_BEGAN)
    assert problem.startswith("Prometheus target down: gateway")


def test_smoke_waits_for_the_next_scrape_of_a_target_that_was_down_before_it(make_ctx, fake):
    answers = iter([_scraped(targets(("gateway", "down")), "gateway", BEFORE)] * 2)
    fake.routes[("9090", "/api/v1/targets")] = lambda r: httpx.Response(
        200, json=next(answers, _scraped(targets(("gateway", "up")), "gateway", AFTER)))
    clock, sleeps = _Clock(), []
    detail = smoke_observe.check_prometheus(make_ctx(), clock=clock, now=lambda: CHECK_BEGAN,
                                            sleep=lambda s: (sleeps.append(s), clock.tick(s)))
    assert "all targets up" in detail and len(sleeps) == 2


def test_a_target_still_down_after_the_wait_is_the_problem_named(make_ctx, fake):
    fake.routes[("9090", "/api/v1/targets")] = lambda r: httpx.Response(
        200, json=_scraped(targets(("gateway", "down")), "gateway", BEFORE))
    clock = _Clock()
    with pytest.raises(Failed) as err:
        smoke_observe.check_prometheus(make_ctx(), settle=5, clock=clock, now=lambda: CHECK_BEGAN, sleep=clock.tick)
    assert err.value.detail.startswith("Prometheus target down: gateway (http://gateway:1/metrics: connection refused")
