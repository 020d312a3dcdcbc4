"""A real Alertmanager (Debian's 0.25) with the rendered config mutes each Foundry
host's warning while every local host of the same gateway is out, and only then.

The alerts posted carry the labels of prometheus/rules/upstreams.alerts.yml and
gateway.alerts.yml plus the series labels their expressions keep (job, instance,
upstream, kind), so the inhibit rules under test are the ones the stack ships.
Shown: FoundryAllUpstreamsDown on gateway gw suppresses gw's FoundryUpstreamDown
and the real-chat symptom it causes; another gateway's per-host warning, and a
cloud upstream's, stay active.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from stackctl.alerting import write_config
from stackctl.alerting.render import TEMPLATES_DIR
from tests.integration.observability import live_stack
from tests.plugins.common import free_ports

RULES_DIR = Path(__file__).resolve().parents[3] / "prometheus" / "rules"

GW = {"job": "gateway", "instance": "gw:9180"}
OTHER_GW = {"job": "gateway", "instance": "other:9180"}
CAUSE = ("FoundryAllUpstreamsDown", GW)
HOST = ("FoundryUpstreamDown", {**GW, "upstream": "desk1", "kind": "local"})
OTHER_HOST = ("FoundryUpstreamDown", {**OTHER_GW, "upstream": "desk2", "kind": "local"})
CLOUD = ("FoundryCloudUpstreamDown", {**GW, "upstream": "azure", "kind": "cloud"})
CHATS = ("FoundryGatewayErrorRatioHigh", {"model": "phi"})
CANARY = ("FoundryLocalDown", {"target": "foundry"})  # the exporter's canary, through the gateway
ALL = (CAUSE, HOST, OTHER_HOST, CLOUD, CHATS, CANARY)


def _rule_labels() -> dict[str, dict[str, str]]:
    return {r["alert"]: r.get("labels", {}) for f in sorted(RULES_DIR.glob("*.alerts.yml"))
            for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"] if "alert" in r}


def _labels(alert: tuple[str, dict[str, str]]) -> dict[str, str]:
    name, series = alert
    return {"alertname": name, **series, **_rule_labels()[name]}


@pytest.fixture(scope="module")
def am_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("upstream-inhibition")
    (port,) = free_ports(1)
    config = write_config(work / "state" / "alertmanager", {}, templates_dir=str(TEMPLATES_DIR))
    proc = live_stack.start_alertmanager(config, port, work)
    url = f"http://127.0.0.1:{port}"
    try:
        fired_at = datetime.now(UTC).isoformat()
        httpx.post(f"{url}/api/v2/alerts", timeout=10, json=[
            {"labels": _labels(a), "annotations": {"summary": a[0]}, "startsAt": fired_at}
            for a in ALL]).raise_for_status()
        yield url
    finally:
        proc.stop()


def _status(am_url: str) -> dict[tuple, dict]:
    """labels (as a sorted tuple) -> the alert Alertmanager reports, once all are in."""
    def all_in() -> list[dict]:
        alerts = httpx.get(f"{am_url}/api/v2/alerts", timeout=10).json()
        return alerts if len(alerts) == len(ALL) else []

    alerts = live_stack.wait_until("every posted alert listed", all_in, deadline_s=30, every_s=0.2)
    return {tuple(sorted(a["labels"].items())): a for a in alerts}


def _of(status: dict[tuple, dict], alert: tuple[str, dict[str, str]]) -> dict:
    return status[tuple(sorted(_labels(alert).items()))]


def test_all_local_hosts_down_mutes_that_gateways_host_warning_and_chat_symptoms(am_url: str) -> None:
    status = _status(am_url)
    cause = _of(status, CAUSE)
    assert cause["status"]["state"] == "active"
    for muted in (HOST, CANARY):
        assert _of(status, muted)["status"]["inhibitedBy"] == [cause["fingerprint"]], muted[0]
    # CHATS is FoundryLocalDown's symptom too; Alertmanager names one inhibitor only.
    assert _of(status, CHATS)["status"]["inhibitedBy"] in (
        [cause["fingerprint"]], [_of(status, CANARY)["fingerprint"]])


def test_another_gateways_host_and_the_cloud_upstream_stay_active(am_url: str) -> None:
    status = _status(am_url)
    for active in (OTHER_HOST, CLOUD):
        assert _of(status, active)["status"] == {
            "state": "active", "inhibitedBy": [], "silencedBy": []}, active[0]
