"""A backup's .env credentials going back into .env: which ones, how, and undone on failure."""

from __future__ import annotations

import stat

import pytest

from stackctl.config.stack import Stack
from stackctl.console import Reporter
from stackctl.day2.archive import Manifest
from stackctl.day2.backup import (
    credentials,
    credentials_restored,
    credentials_to_write,
    write_credentials,
)
from stackctl.errors import UsageError

OLD = {"WEBUI_ADMIN_EMAIL": "boss@example.org", "WEBUI_ADMIN_PASSWORD": "old-password-" + "p" * 30,
       "WEBUI_SECRET_KEY": "old-key-" + "k" * 35, "GRAFANA_ADMIN_USER": "admin",
       "GRAFANA_ADMIN_PASSWORD": "old-grafana-" + "g" * 30}
ENV_TEXT = ("# my stack\nCOMPOSE_PROJECT_NAME=mine\nOPENWEBUI_PORT=3999\n"
            "WEBUI_ADMIN_EMAIL=admin@example.com\nWEBUI_ADMIN_PASSWORD=new-password-nnnnnnnnnnnnnnnn\n"
            "WEBUI_SECRET_KEY=new-key-nnnnnnnnnnnnnnnnnnnnnnnn\n# grafana\nGRAFANA_ADMIN_PASSWORD=new-grafana-nnnnnnnnnnnn\n")


def manifest(volumes=("open-webui-data",), secrets=None) -> Manifest:
    return Manifest(created_at="t", stack_version="0.1.0", project="p", images={}, openwebui_version="0.12.4",
                    volumes=volumes, files={}, secrets=dict(OLD if secrets is None else secrets))


def test_a_backup_carries_the_secrets_and_the_names_that_go_with_them():
    env = {**OLD, "OPENWEBUI_PORT": "3000", "FOUNDRY_LOCAL_ENDPOINT": "http://x:1", "COMPOSE_PROJECT_NAME": "p"}
    assert credentials(env) == OLD


def test_credentials_go_back_only_for_data_that_is_restored_or_absent():
    env = {k: "current" for k in OLD}
    openwebui_only = credentials_to_write(manifest(), env, absent=set())
    assert set(openwebui_only) == {"WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY"}
    # Grafana keeps its own password in its volume: written only when that volume is restored or new.
    assert "GRAFANA_ADMIN_PASSWORD" in credentials_to_write(manifest(), env, absent={"grafana-data"})
    assert "GRAFANA_ADMIN_PASSWORD" in credentials_to_write(manifest(("open-webui-data", "grafana-data")), env, set())
    assert credentials_to_write(manifest(), dict(OLD), set()) == {}  # nothing differs
    assert credentials_to_write(manifest(secrets={}), env, set()) == {}  # `backup --no-secrets`


def test_writing_credentials_keeps_every_other_line_and_mode_0600(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(ENV_TEXT)
    env_file.chmod(0o644)
    write_credentials(env_file, {"WEBUI_ADMIN_PASSWORD": OLD["WEBUI_ADMIN_PASSWORD"],
                                 "GRAFANA_ADMIN_USER": "admin"})
    lines = env_file.read_text().splitlines()
    assert lines[:4] == ENV_TEXT.splitlines()[:4]  # comment, unrelated keys, order: as they were
    assert lines[4] == f"WEBUI_ADMIN_PASSWORD={OLD['WEBUI_ADMIN_PASSWORD']}"  # in place
    assert lines[5:8] == ENV_TEXT.splitlines()[5:8]
    assert lines[8] == "GRAFANA_ADMIN_USER=admin"  # a missing key is appended
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_a_credential_that_is_no_env_value_is_refused_and_nothing_is_written(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(ENV_TEXT)
    with pytest.raises(UsageError, match=r"the backup's WEBUI_ADMIN_PASSWORD cannot be written to \.env"):
        write_credentials(env_file, {"WEBUI_ADMIN_PASSWORD": "has $dollar-and-more"})
    assert env_file.read_text() == ENV_TEXT


def test_a_failed_bring_up_puts_the_previous_env_back(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(ENV_TEXT)
    stack = Stack(tmp_path, env_file, {"WEBUI_ADMIN_PASSWORD": "new-password-nnnnnnnnnnnnnnnn"})
    r = Reporter.quiet()
    with pytest.raises(RuntimeError), credentials_restored(stack, manifest(), set(), r) as written:
        assert written == ("WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY")
        assert f"WEBUI_ADMIN_PASSWORD={OLD['WEBUI_ADMIN_PASSWORD']}" in env_file.read_text()
        raise RuntimeError("up failed")
    assert env_file.read_text() == ENV_TEXT
    with credentials_restored(stack, manifest(), set(), r):
        pass
    assert f"WEBUI_SECRET_KEY={OLD['WEBUI_SECRET_KEY']}" in env_file.read_text()
    out = r.console.file.getvalue()
    assert "WEBUI_ADMIN_PASSWORD" in out and not any(v in out for v in OLD.values() if len(v) > 12)
