"""`invoke doctor` reports what a user has weakened, never prints a secret, and
keeps going when one check breaks."""

from __future__ import annotations

import pytest

from stackctl.checks import doctor
from stackctl.checks.context import Ctx
from stackctl.checks.runner import Check, ok
from stackctl.config import envfile
from stackctl.config.stack import load_stack
from stackctl.console import cmd


@pytest.fixture
def env_file(tmp_path, monkeypatch):
    p = tmp_path / ".env"
    monkeypatch.setenv("STACK_ENV_FILE", str(p))
    envfile.ensure(p)
    return p


def run_env_check(env_file):
    return list(doctor.check_env(Ctx(load_stack())))


def test_clean_env_is_ok(env_file):
    assert all(f.status == "ok" for f in run_env_check(env_file))


def test_world_readable_env_is_an_error_with_the_chmod_fix(env_file):
    env_file.chmod(0o644)
    bad = [f for f in run_env_check(env_file) if f.status == "fail"]
    assert bad and "chmod 600" in bad[0].fix


def test_lan_bind_is_a_warning(env_file):
    env_file.write_text(env_file.read_text().replace("STACK_BIND_ADDRESS=127.0.0.1", "STACK_BIND_ADDRESS=0.0.0.0"))
    warns = [f for f in run_env_check(env_file) if f.status == "warn"]
    assert warns and "0.0.0.0" in warns[0].detail and "STACK_BIND_ADDRESS=127.0.0.1" in warns[0].fix


def test_findings_never_contain_secret_values(env_file):
    env_file.chmod(0o644)
    secrets = [v for k, v in envfile.load(env_file).items() if k in doctor.SECRET_KEYS]
    text = repr(run_env_check(env_file))
    assert not any(s in text for s in secrets)


def test_a_broken_check_becomes_an_error_finding_and_the_rest_still_run(env_file):
    def boom(ctx):
        raise RuntimeError("kaput")
        yield  # pragma: no cover

    def fine(ctx):
        yield ok("fine", "still ran")

    report = doctor.run_doctor((Check("boom", boom), Check("fine", fine)))
    assert [(f.name, f.status) for f in report.results] == [("boom", "fail"), ("fine", "ok")]
    assert doctor.exit_code(report) == 2


def test_missing_env_skips_dependent_checks_with_a_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("STACK_ENV_FILE", str(tmp_path / "nope.env"))
    findings = doctor.run_doctor().results
    assert findings[0].name == "env" and "./stack up" in findings[0].fix
    assert findings[0].status == "fail" and all(f.status == "skip" for f in findings[1:])


def test_an_invalid_env_names_the_key_the_value_and_the_rule(env_file):
    env_file.write_text(env_file.read_text().replace("OPENWEBUI_PORT=3000", "OPENWEBUI_PORT=abc"))
    report = doctor.run_doctor()
    bad = [f for f in report.results if f.status == "fail"]
    assert bad and "OPENWEBUI_PORT='abc' is not a port (1-65535)" in bad[0].detail
    assert all("see env above" in f.detail for f in report.results if f.status == "skip")


# -- alerting: who is told, and whether Alertmanager runs what .env says -----------------

HOOK = "https://hooks.example.com/services/T0K3N-s3cr3t"


def _alerting(env_file, **values):
    text = env_file.read_text().replace("STACK_STATE_DIR=.state\n",
                                        f"STACK_STATE_DIR={env_file.parent / 'state'}\n")
    for k, v in values.items():
        text = text.replace(f"{k}=\n", f"{k}={v}\n")
    env_file.write_text(text)
    stack = load_stack()
    return stack, list(doctor.check_alerting(Ctx(stack)))


def test_no_receiver_warns_that_alerts_reach_nobody_with_the_exact_fix(env_file):
    _, found = _alerting(env_file)
    (nobody, *rest) = found
    assert nobody.status == "warn" and "alerts reach nobody" in nobody.detail
    assert nobody.fix == doctor.FIX_NO_RECEIVER
    for key in ("ALERT_WEBHOOK_URL", "ALERT_SLACK_WEBHOOK_URL", "ALERT_DISCORD_WEBHOOK_URL",
                "ALERT_EMAIL_TO", "ALERT_EMAIL_FROM", "ALERT_SMTP_SMARTHOST", cmd("up")):
        assert key in nobody.fix
    assert [(r.status, r.detail) for r in rest] == [("warn", "Alertmanager's config has not been rendered yet")]


def test_configured_receivers_are_named_by_kind_never_by_url(env_file):
    from stackctl.alerting import deploy

    stack, _ = _alerting(env_file, ALERT_WEBHOOK_URL=HOOK, ALERT_EMAIL_TO="me@example.com",
                         ALERT_EMAIL_FROM="stack@example.com", ALERT_SMTP_SMARTHOST="smtp.example.com:587")
    deploy.render_for(stack)
    found = list(doctor.check_alerting(Ctx(stack)))
    assert [(r.status, r.detail) for r in found] == [("ok", "alerts are sent to: webhook, email")]
    assert "T0K3N" not in repr(found)


def test_a_config_older_than_env_asks_for_up(env_file):
    from stackctl.alerting import deploy

    stack, _ = _alerting(env_file)
    deploy.render_for(stack)
    _, found = _alerting(env_file, ALERT_WEBHOOK_URL=HOOK)
    assert [(r.status, r.detail) for r in found] == [
        ("ok", "alerts are sent to: webhook"),
        ("warn", "Alertmanager runs with an older config than .env describes")]
    assert cmd("up") in found[1].fix


def test_a_bad_alerting_value_fails_naming_the_key_not_the_value(env_file):
    _, found = _alerting(env_file, ALERT_SLACK_WEBHOOK_URL="hooks.slack.com/services/T0K3N-s3cr3t")
    (r,) = found
    assert r.status == "fail" and r.detail.startswith("ALERT_SLACK_WEBHOOK_URL in .env is not an http(s) URL")
    assert "T0K3N" not in repr(found)
