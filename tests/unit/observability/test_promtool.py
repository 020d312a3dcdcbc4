"""promtool (Debian's, 2.42) accepts the config, the rules and their unit tests.

Also checks that the rule unit tests cover every alert with both a firing and a
quiet evaluation, so a new alert cannot ship untested.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.observability import promql_sources as src

PROMTOOL = "/usr/bin/promtool"
RULE_TESTS = sorted((src.REPO / "prometheus" / "tests").glob("*.yml"))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_check_config() -> None:
    result = promtool("check", "config", src.PROMETHEUS_YML)
    assert result.returncode == 0, result.stdout + result.stderr


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
