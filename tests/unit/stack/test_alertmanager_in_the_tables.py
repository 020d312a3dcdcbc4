"""The alertmanager service joins every table the service list drives: ports
preflight and validation, volumes, backup --include-metrics and the archive's
known volumes, and archives made before it existed still parse."""

from __future__ import annotations

import json

import pytest

from stackctl.config import envfile
from stackctl.config.settings import (
    ALERTMANAGER,
    PORT_KEYS,
    SECRET_KEYS,
    SENSITIVE_KEYS,
    SERVICE_NAMES,
    VOLUME_SERVICE,
    VOLUMES,
)
from stackctl.day2 import archive
from stackctl.errors import UsageError


def test_alertmanager_is_a_service_with_its_port_and_volume():
    assert ALERTMANAGER.name in SERVICE_NAMES
    assert ALERTMANAGER.port_key in PORT_KEYS
    assert VOLUME_SERVICE["alertmanager-data"] == ALERTMANAGER.name
    assert "alertmanager-data" in VOLUMES and "alertmanager-data" in archive.KNOWN_VOLUMES


def test_its_port_clash_is_refused_like_any_other(tmp_path):
    p = tmp_path / ".env"
    envfile.ensure(p)
    p.write_text(p.read_text().replace("ALERTMANAGER_PORT=9093", "ALERTMANAGER_PORT=9090"))
    with pytest.raises(UsageError, match=r"(ALERTMANAGER|PROMETHEUS)_PORT and (PROMETHEUS|ALERTMANAGER)_PORT "
                                         r"both use port 9090"):
        envfile.load(p)


def test_receiver_secrets_are_sensitive_not_generated():
    assert {"ALERT_WEBHOOK_URL", "ALERT_SMTP_PASSWORD"} <= SENSITIVE_KEYS
    assert not SENSITIVE_KEYS & SECRET_KEYS


def _manifest(volumes):
    return json.dumps({"format": archive.FORMAT, "created_at": "2026-12-01T00:00:00Z",
                       "stack_version": "0", "project": "p", "images": {}, "openwebui_version": "0.12.4",
                       "volumes": volumes, "files": {}})


def test_archives_with_and_without_the_alertmanager_volume_parse():
    assert archive.parse_manifest(_manifest(["open-webui-data", "alertmanager-data"])).volumes == (
        "open-webui-data", "alertmanager-data")
    assert archive.parse_manifest(_manifest(["open-webui-data", "prometheus-data"])).volumes == (
        "open-webui-data", "prometheus-data")
