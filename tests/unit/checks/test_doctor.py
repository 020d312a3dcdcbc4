"""`invoke doctor` reports what a user has weakened, never prints a secret, and
keeps going when one check breaks."""

from __future__ import annotations

import pytest

from stackctl.checks import doctor
from stackctl.checks.context import Ctx
from stackctl.checks.runner import Check, ok
from stackctl.config import envfile
from stackctl.config.stack import load_stack


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
