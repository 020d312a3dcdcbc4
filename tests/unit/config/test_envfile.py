"""The .env file: generated once, 0600, idempotent, never overwriting the user."""

from __future__ import annotations

import stat

import pytest

from stackctl.config import envfile
from stackctl.config.settings import SECRET_KEYS, SETTINGS
from stackctl.errors import UsageError


def mode(p):
    return stat.S_IMODE(p.stat().st_mode)


def test_first_run_writes_every_key_0600_with_distinct_generated_secrets(tmp_path):
    p = tmp_path / ".env"
    env, added = envfile.ensure(p)
    assert mode(p) == 0o600
    assert set(added) == {s.key for s in SETTINGS}
    secrets = [env[k] for k in SECRET_KEYS]
    assert len(set(secrets)) == len(secrets)
    assert all(len(v) >= 32 for v in secrets)
    assert env["STACK_BIND_ADDRESS"] == "127.0.0.1"


def test_second_run_changes_nothing(tmp_path):
    p = tmp_path / ".env"
    envfile.ensure(p)
    before = p.read_bytes()
    _, added = envfile.ensure(p)
    assert added == []
    assert p.read_bytes() == before


def test_user_values_and_comments_are_kept_and_missing_keys_appended(tmp_path):
    p = tmp_path / ".env"
    p.write_text("# mine\nOPENWEBUI_PORT=3300\nMY_OWN=1\n")
    env, added = envfile.ensure(p)
    text = p.read_text()
    assert text.startswith("# mine\nOPENWEBUI_PORT=3300\nMY_OWN=1\n")
    assert env["OPENWEBUI_PORT"] == "3300"
    assert "OPENWEBUI_PORT" not in added and "GRAFANA_PORT" in added


def test_loose_permissions_are_tightened(tmp_path):
    p = tmp_path / ".env"
    envfile.ensure(p)
    p.chmod(0o644)
    envfile.ensure(p)
    assert mode(p) == 0o600


def test_empty_secrets_from_the_example_are_generated(tmp_path):
    p = tmp_path / ".env"
    p.write_text(envfile.render_example())
    env, added = envfile.ensure(p)
    assert set(SECRET_KEYS) <= set(added)
    assert all(len(env[k]) >= 32 for k in SECRET_KEYS)


@pytest.mark.parametrize("text, needle", [
    ("OPENWEBUI_PORT 3000\n", "line 1: expected KEY=VALUE"),
    ("OPENWEBUI_PORT=\"3000\"\n", "line 1: OPENWEBUI_PORT has quotes"),
    ("A=1\nA=2\n", "line 2: A is set twice"),
    ("lower=1\n", "line 1: expected KEY=VALUE"),
])
def test_malformed_lines_are_refused_and_nothing_is_written(tmp_path, text, needle):
    p = tmp_path / ".env"
    p.write_text(text)
    with pytest.raises(UsageError) as exc:
        envfile.ensure(p)
    assert needle in str(exc.value)
    assert str(p) in str(exc.value)
    assert p.read_text() == text
    assert exc.value.exit_code == 2


@pytest.mark.parametrize("line, needle", [
    ("OPENWEBUI_PORT=70000", "OPENWEBUI_PORT='70000' is not a port"),
    ("GRAFANA_PORT=3000", "both use port 3000"),
    ("STACK_BIND_ADDRESS=localhost", "STACK_BIND_ADDRESS='localhost' is not an IP address"),
    ("FOUNDRY_LOCAL_ENDPOINT=ftp://x", "is not an http(s) URL"),
    ("WEBUI_ADMIN_PASSWORD=short", "WEBUI_ADMIN_PASSWORD is shorter than 12"),
    ("WEBUI_ADMIN_EMAIL=admin", "is not an email address"),
    ("COMPOSE_PROJECT_NAME=My Stack", "COMPOSE_PROJECT_NAME='My Stack'"),
])
def test_bad_values_are_named(tmp_path, line, needle):
    p = tmp_path / ".env"
    p.write_text(line + "\n")
    with pytest.raises(UsageError) as exc:
        envfile.ensure(p)
    assert needle in str(exc.value)
    assert p.read_text() == line + "\n"


def test_all_problems_are_reported_at_once(tmp_path):
    p = tmp_path / ".env"
    p.write_text("OPENWEBUI_PORT=x\nPROMETHEUS_PORT=0\n")
    with pytest.raises(UsageError) as exc:
        envfile.ensure(p)
    assert "OPENWEBUI_PORT" in str(exc.value) and "PROMETHEUS_PORT" in str(exc.value)


def test_set_managed_rewrites_only_managed_keys(tmp_path):
    p = tmp_path / ".env"
    envfile.ensure(p)
    before = envfile.load(p)
    assert envfile.set_managed(p, {"FOUNDRY_CONTAINER_OPENAI_URL": "http://host.docker.internal:1/v1"})
    after = envfile.load(p)
    assert after["FOUNDRY_CONTAINER_OPENAI_URL"] == "http://host.docker.internal:1/v1"
    assert {k: v for k, v in after.items() if k != "FOUNDRY_CONTAINER_OPENAI_URL"} == \
        {k: v for k, v in before.items() if k != "FOUNDRY_CONTAINER_OPENAI_URL"}
    assert not envfile.set_managed(p, {"FOUNDRY_CONTAINER_OPENAI_URL": "http://host.docker.internal:1/v1"})
    with pytest.raises(ValueError):
        envfile.set_managed(p, {"OPENWEBUI_PORT": "1"})
    assert mode(p) == 0o600


def test_load_without_file_says_run_up(tmp_path):
    with pytest.raises(UsageError, match="run `./stack up`"):
        envfile.load(tmp_path / ".env")


def test_committed_example_matches_settings(repo_root):
    assert (repo_root / ".env.example").read_text() == envfile.render_example(), \
        "regenerate: python -c \"from stackctl import envfile; open('.env.example','w').write(envfile.render_example())\""
