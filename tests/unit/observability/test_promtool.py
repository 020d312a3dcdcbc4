"""promtool (Debian's, 2.42) accepts the config, the rules and their unit tests.

Also checks that the rule unit tests cover every alert with both a firing and a
quiet evaluation, so a new alert cannot ship untested.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from stackctl.config.settings import PROMETHEUS_SECRETS_KEY
from stackctl.foundry import door
from tests.unit.observability import promql_sources as src

PROMTOOL = "/usr/bin/promtool"
RULE_TESTS = sorted((src.REPO / "prometheus" / "tests").glob("*.yml"))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


SECRETS_MOUNT = "/etc/prometheus-secrets"  # compose mounts the gateway's key and target here
# What `up` writes there (stackctl.foundry.door): the key, and a file_sd target list.
GATEWAY_TARGETS = [{"targets": ["host.docker.internal:9180"], "labels": {"service": "gateway"}}]


def config_with_secrets(tmp_path: Path, key: bool = True, targets: object = GATEWAY_TARGETS) -> Path:
    """A copy of prometheus.yml whose secrets folder is ``tmp_path/secrets`` (next to
    the project's rules, as in the container), holding the files ``up`` writes."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    if key:
        (secrets / "gateway.key").write_text("k" * 32 + "\n")
    (secrets / "gateway.json").write_text(json.dumps(targets))
    (tmp_path / "rules").symlink_to(src.RULES_DIR)
    config = tmp_path / "prometheus.yml"
    config.write_text(src.PROMETHEUS_YML.read_text().replace(SECRETS_MOUNT, str(secrets)))
    return config


def test_check_config_syntax() -> None:
    """The committed file names secrets that exist only in the container: syntax only."""
    result = promtool("check", "config", "--syntax-only", src.PROMETHEUS_YML)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_config_in_full_with_the_mounted_secrets(tmp_path: Path) -> None:
    result = promtool("check", "config", config_with_secrets(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("key", "targets", "words"), [
    (False, GATEWAY_TARGETS, "gateway.key"),
    (True, {"targets": "not a list"}, "gateway.json"),
], ids=["no key file", "malformed target file"])
def test_the_full_check_sees_a_missing_key_or_a_bad_target_file(
        tmp_path: Path, key: bool, targets: object, words: str) -> None:
    result = promtool("check", "config", config_with_secrets(tmp_path, key, targets))
    assert result.returncode != 0 and words in result.stdout + result.stderr


def test_gateway_is_scraped_with_its_key_at_the_target_up_writes() -> None:
    """No port here: the target list comes from the stack's settings, through ``up``,
    which writes both files under the names stackctl.foundry.door gives them into the
    folder compose mounts at SECRETS_MOUNT."""
    jobs = {j["job_name"]: j for j in yaml.safe_load(src.PROMETHEUS_YML.read_text())["scrape_configs"]}
    gateway = jobs["gateway"]
    assert gateway["authorization"] == {
        "type": "Bearer", "credentials_file": f"{SECRETS_MOUNT}/{door.KEY_FILE}"}
    assert gateway["file_sd_configs"] == [{"files": [f"{SECRETS_MOUNT}/{door.TARGETS_FILE}"]}]
    assert "static_configs" not in gateway
    compose = yaml.safe_load((src.REPO / "compose.yaml").read_text())
    mounts = [v.split("}", 1)[1] for v in compose["services"]["prometheus"]["volumes"]
              if isinstance(v, str) and v.startswith(f"${{{PROMETHEUS_SECRETS_KEY}:")]
    # file by file (Prometheus, as nobody, cannot enter the 0700 folder itself)
    assert mounts == [f"/{f}:{SECRETS_MOUNT}/{f}:ro" for f in (door.KEY_FILE, door.TARGETS_FILE)], \
        compose["services"]["prometheus"]["volumes"]


def test_check_rules() -> None:
    result = promtool("check", "rules", *sorted(src.RULES_DIR.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool tests in prometheus/tests/"
    result = promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def _alert_evaluations() -> dict[str, list[list]]:
    """alertname -> the exp_alerts list of each evaluation in the promtool tests."""
    found: dict[str, list[list]] = {}
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            assert "interval" in test, f"{path.name}: {test.get('name')}: set interval (2.42 has no default)"
            for case in test.get("alert_rule_test", []):
                found.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    return found


@pytest.mark.parametrize("alert", sorted(a["alert"] for a in src.alerts()))
def test_every_alert_has_a_firing_and_a_quiet_case(alert: str) -> None:
    evaluations = _alert_evaluations().get(alert, [])
    assert any(evaluations), f"{alert}: no promtool case where it fires"
    assert not all(evaluations), f"{alert}: no promtool case where it stays quiet"
