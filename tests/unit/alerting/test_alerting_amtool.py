"""Lint: Debian's amtool (Alertmanager 0.25) accepts every rendered config.

Every receiver combination (and the optional fields) is rendered with the
repository's notification templates, so amtool parses those too. The official
image (0.28) accepts a superset of 0.25's config; 0.25 is the bound to stay in.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from stackctl.alerting import render
from stackctl.alerting.render import TEMPLATES_DIR
from tests.unit.alerting.test_alerting_render import COMBINATIONS, env_for

AMTOOL = "/usr/bin/amtool"


def amtool_check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL, "check-config", *map(str, files)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_amtool_accepts_every_receiver_combination(tmp_path: Path) -> None:
    envs = {"+".join(c) or "none": env_for(c) for c in COMBINATIONS}
    envs["all-options"] = env_for(
        COMBINATIONS[-1], ALERT_SLACK_CHANNEL="#alerts", ALERT_SMTP_USERNAME="bot",
        ALERT_SMTP_PASSWORD="pw", ALERT_SMTP_REQUIRE_TLS="false", ALERT_REPEAT_INTERVAL="1d")
    files = []
    for name, env in envs.items():
        path = tmp_path / f"{name}.yml"
        path.write_text(render(env, templates_dir=str(TEMPLATES_DIR)))
        files.append(path)
    result = amtool_check(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("1 templates") == len(files), result.stdout  # templates were parsed


def test_amtool_refuses_what_0_25_does_not_know(tmp_path: Path) -> None:
    """The lint can fail: a Teams receiver (0.26+) is refused, so is a broken template."""
    doc = yaml.safe_load(render(env_for(("webhook",)), templates_dir=str(TEMPLATES_DIR)))
    doc["receivers"][1]["msteams_configs"] = [{"webhook_url": "https://example.com/x"}]
    teams = tmp_path / "teams.yml"
    teams.write_text(yaml.safe_dump(doc))
    broken_tmpl = tmp_path / "templates" / "broken.tmpl"
    broken_tmpl.parent.mkdir()
    broken_tmpl.write_text('{{ define "foundry.text" }}{{ .Alerts ')
    broken = tmp_path / "broken.yml"
    broken.write_text(render(env_for(("slack",)), templates_dir=str(broken_tmpl.parent)))
    for path, expected in ((teams, "msteams_configs"), (broken, "unclosed action")):
        result = amtool_check(path)
        assert result.returncode != 0, f"{path.name} passed amtool"
        assert expected in result.stdout + result.stderr


@pytest.mark.parametrize("name", ["foundry.title", "foundry.text", "foundry.email.html"])
def test_templates_named_in_the_config_are_defined(name: str) -> None:
    text = "".join(p.read_text() for p in TEMPLATES_DIR.glob("*.tmpl"))
    assert f'{{{{ define "{name}" -}}}}' in text
