"""`invoke doctor` reports what a user has weakened, never prints a secret, and
keeps going when one check breaks."""

from __future__ import annotations

import pytest

from stackctl.checks import doctor
from stackctl.config import envfile
from stackctl.config.stack import load_stack


@pytest.fixture
def env_file(tmp_path, monkeypatch):
    p = tmp_path / ".env"
    monkeypatch.setenv("STACK_ENV_FILE", str(p))
    envfile.ensure(p)
    return p


def run_env_check(env_file):
    return list(doctor.check_env(doctor.Ctx(load_stack())))


def test_clean_env_is_ok(env_file):
    assert all(f.severity == "ok" for f in run_env_check(env_file))


def test_world_readable_env_is_an_error_with_the_chmod_fix(env_file):
    env_file.chmod(0o644)
    bad = [f for f in run_env_check(env_file) if f.severity == "error"]
    assert bad and "chmod 600" in bad[0].fix


def test_lan_bind_is_a_warning(env_file):
    env_file.write_text(env_file.read_text().replace("STACK_BIND_ADDRESS=127.0.0.1", "STACK_BIND_ADDRESS=0.0.0.0"))
    warns = [f for f in run_env_check(env_file) if f.severity == "warn"]
    assert warns and "0.0.0.0" in warns[0].message and "STACK_BIND_ADDRESS=127.0.0.1" in warns[0].fix


def test_findings_never_contain_secret_values(env_file):
    env_file.chmod(0o644)
    secrets = [v for k, v in envfile.load(env_file).items() if k in doctor.SECRET_KEYS]
    text = repr([f.as_dict() for f in run_env_check(env_file)])
    assert not any(s in text for s in secrets)


def test_a_broken_check_becomes_an_error_finding_and_the_rest_still_run(env_file):
    def boom(ctx):
        raise RuntimeError("kaput")
        yield  # pragma: no cover

    def fine(ctx):
        yield doctor.ok("fine", "still ran")

    findings = doctor.run_doctor((boom, fine))
    assert [(f.check, f.severity) for f in findings] == [("boom", "error"), ("fine", "ok")]
    assert max(f.exit_code for f in findings) == 2


def test_missing_env_skips_dependent_checks_with_a_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("STACK_ENV_FILE", str(tmp_path / "nope.env"))
    findings = doctor.run_doctor()
    assert findings[0].check == "env" and "invoke up" in findings[0].fix
    assert all(f.severity == "error" for f in findings)
