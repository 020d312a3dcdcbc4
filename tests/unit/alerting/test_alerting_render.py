"""stackctl.alerting renders the receivers .env asks for, and refuses bad values.

Each .env combination renders exactly the expected receivers; each bad value is
refused with its exact one-line message naming the key, and nothing is written.
"""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

import pytest
import yaml

from stackctl.alerting import KEYS, KINDS, SENSITIVE_KEYS, enabled_receivers, render, write_config
from stackctl.alerting.render import BASE_FILE, NOTIFY, NULL
from stackctl.errors import UsageError

REPO = Path(__file__).resolve().parents[3]
RULES_DIR = REPO / "prometheus" / "rules"

TOKEN = "T0K3N-s3cr3t"
# The minimal .env lines that turn each receiver kind on.
KIND_ENV: dict[str, dict[str, str]] = {
    "webhook": {"ALERT_WEBHOOK_URL": f"http://127.0.0.1:9/hook/{TOKEN}"},
    "slack": {"ALERT_SLACK_WEBHOOK_URL": f"https://hooks.slack.com/services/{TOKEN}"},
    "discord": {"ALERT_DISCORD_WEBHOOK_URL": f"https://discord.com/api/webhooks/1/{TOKEN}"},
    "email": {"ALERT_EMAIL_TO": "me@example.com", "ALERT_EMAIL_FROM": "stack@example.com",
              "ALERT_SMTP_SMARTHOST": "smtp.example.com:587"},
}
CONFIG_KEY = {"webhook": "webhook_configs", "slack": "slack_configs",
              "discord": "discord_configs", "email": "email_configs"}
COMBINATIONS = [c for n in range(len(KIND_ENV) + 1) for c in itertools.combinations(KIND_ENV, n)]


def env_for(kinds, **extra: str) -> dict[str, str]:
    env = {"COMPOSE_PROJECT_NAME": "x", "OPENWEBUI_PORT": "3000"}  # other .env keys are ignored
    for kind in kinds:
        env.update(KIND_ENV[kind])
    env.update(extra)
    return env


def receivers_of(text: str) -> tuple[str, dict[str, dict]]:
    doc = yaml.safe_load(text)
    return doc["route"]["receiver"], {r["name"]: r for r in doc["receivers"]}


@pytest.mark.parametrize("kinds", COMBINATIONS, ids=lambda c: "+".join(c) or "none")
def test_each_combination_renders_exactly_its_receivers(kinds) -> None:
    text = render(env_for(kinds))
    route_receiver, receivers = receivers_of(text)
    assert enabled_receivers(env_for(kinds)) == kinds
    if not kinds:
        assert route_receiver == NULL
        assert receivers == {NULL: {"name": NULL}}
        assert "Receivers: none" in text
        return
    assert route_receiver == NOTIFY
    notify = receivers[NOTIFY]
    assert set(notify) - {"name"} == {CONFIG_KEY[k] for k in kinds}
    for kind in kinds:
        (config,) = notify[CONFIG_KEY[kind]]
        assert config["send_resolved"] is True, kind
    if "webhook" in kinds:
        assert notify["webhook_configs"][0]["url"] == KIND_ENV["webhook"]["ALERT_WEBHOOK_URL"]
    if "slack" in kinds:
        assert notify["slack_configs"][0]["api_url"] == KIND_ENV["slack"]["ALERT_SLACK_WEBHOOK_URL"]
        assert "foundry.text" in notify["slack_configs"][0]["text"]
    if "discord" in kinds:
        assert "foundry.text" in notify["discord_configs"][0]["message"]
    if "email" in kinds:
        email = notify["email_configs"][0]
        assert (email["to"], email["from"], email["smarthost"], email["require_tls"]) == (
            "me@example.com", "stack@example.com", "smtp.example.com:587", True)
        assert "auth_password" not in email


def test_receivers_list_narrows_to_the_listed_kinds() -> None:
    env = env_for(KIND_ENV, ALERT_RECEIVERS=" Email , webhook ")
    assert enabled_receivers(env) == ("webhook", "email")
    _, receivers = receivers_of(render(env))
    assert set(receivers[NOTIFY]) == {"name", "webhook_configs", "email_configs"}


def test_optional_fields_reach_the_config() -> None:
    env = env_for(("slack", "email"), ALERT_SLACK_CHANNEL="#alerts", ALERT_SMTP_USERNAME="bot",
                  ALERT_SMTP_PASSWORD="pw", ALERT_SMTP_REQUIRE_TLS="false", ALERT_REPEAT_INTERVAL="1d")
    doc = yaml.safe_load(render(env))
    notify = {r["name"]: r for r in doc["receivers"]}[NOTIFY]
    assert notify["slack_configs"][0]["channel"] == "#alerts"
    email = notify["email_configs"][0]
    assert (email["auth_username"], email["auth_password"], email["require_tls"]) == ("bot", "pw", False)
    assert doc["route"]["repeat_interval"] == "1d"


def test_route_groups_and_repeats_sanely_and_points_at_the_templates() -> None:
    doc = yaml.safe_load(render(env_for(())))
    route = doc["route"]
    assert route["group_by"] == ["alertname", "target"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("30s", "5m", "4h")
    assert doc["templates"] == ["/etc/alertmanager/templates/*.tmpl"]


URL_MESSAGE = ("{key} in .env is not an http(s) URL with a host; write it in full, "
               "e.g. https://host/path (value not shown: it may hold a token)")
BAD = [
    ("webhook-no-scheme", {"ALERT_WEBHOOK_URL": f"hooks.example.com/{TOKEN}"},
     URL_MESSAGE.format(key="ALERT_WEBHOOK_URL")),
    ("slack-ftp", {"ALERT_SLACK_WEBHOOK_URL": f"ftp://hooks.slack.com/{TOKEN}"},
     URL_MESSAGE.format(key="ALERT_SLACK_WEBHOOK_URL")),
    ("discord-no-host", {"ALERT_DISCORD_WEBHOOK_URL": f"https:///{TOKEN}"},
     URL_MESSAGE.format(key="ALERT_DISCORD_WEBHOOK_URL")),
    ("unknown-kind", {**KIND_ENV["webhook"], "ALERT_RECEIVERS": "webhook,pager"},
     "ALERT_RECEIVERS in .env names an unknown receiver kind 'pager'; known: webhook, slack, discord, email"),
    ("teams", {"ALERT_RECEIVERS": "msteams"},
     "ALERT_RECEIVERS in .env names 'msteams': Microsoft Teams needs Alertmanager 0.26+ "
     "(msteams_configs); this stack stays inside 0.25: post to a relay with ALERT_WEBHOOK_URL"),
    ("listed-not-set", {**KIND_ENV["webhook"], "ALERT_RECEIVERS": "webhook,slack"},
     "ALERT_RECEIVERS in .env lists 'slack' but ALERT_SLACK_WEBHOOK_URL is empty"),
    ("bad-email", {**KIND_ENV["email"], "ALERT_EMAIL_TO": "me@example.com, not-an-address"},
     "ALERT_EMAIL_TO in .env: 'not-an-address' is not an e-mail address (name@example.com)"),
    ("bad-from", {**KIND_ENV["email"], "ALERT_EMAIL_FROM": "stack"},
     "ALERT_EMAIL_FROM in .env: 'stack' is not an e-mail address (name@example.com)"),
    ("email-no-smarthost", {**KIND_ENV["email"], "ALERT_SMTP_SMARTHOST": ""},
     "ALERT_SMTP_SMARTHOST in .env is empty but ALERT_EMAIL_TO is set; set it to host:port of your mail server"),
    ("smarthost-no-port", {**KIND_ENV["email"], "ALERT_SMTP_SMARTHOST": "smtp.example.com"},
     "ALERT_SMTP_SMARTHOST in .env: 'smtp.example.com' is not host:port (e.g. smtp.example.com:587)"),
    ("smarthost-port-range", {**KIND_ENV["email"], "ALERT_SMTP_SMARTHOST": "smtp.example.com:70000"},
     "ALERT_SMTP_SMARTHOST in .env: 'smtp.example.com:70000' is not host:port (e.g. smtp.example.com:587)"),
    ("tls-not-bool", {**KIND_ENV["email"], "ALERT_SMTP_REQUIRE_TLS": "yes"},
     "ALERT_SMTP_REQUIRE_TLS in .env: 'yes' is not true or false"),
    ("password-no-user", {**KIND_ENV["email"], "ALERT_SMTP_PASSWORD": TOKEN},
     "ALERT_SMTP_USERNAME in .env is empty but ALERT_SMTP_PASSWORD is set"),
    ("disabled-email-still-checked", {**KIND_ENV["webhook"], **KIND_ENV["email"],
                                      "ALERT_RECEIVERS": "webhook", "ALERT_EMAIL_TO": "nobody"},
     "ALERT_EMAIL_TO in .env: 'nobody' is not an e-mail address (name@example.com)"),
    ("channel-without-slack", {"ALERT_SLACK_CHANNEL": "#alerts"},
     "ALERT_SLACK_CHANNEL in .env is set but ALERT_SLACK_WEBHOOK_URL is empty"),
    ("repeat-not-duration", {"ALERT_REPEAT_INTERVAL": "4 hours"},
     "ALERT_REPEAT_INTERVAL in .env: '4 hours' is not a duration like 30m, 4h or 1d"),
    ("repeat-too-short", {"ALERT_REPEAT_INTERVAL": "30s"},
     "ALERT_REPEAT_INTERVAL in .env: '30s' is shorter than 5m (the grouping interval); use e.g. 1h"),
    ("typo-key", {"ALERT_SLAK_WEBHOOK_URL": "https://hooks.slack.com/x"},
     "ALERT_SLAK_WEBHOOK_URL in .env is not an alerting key; known: "
     + ", ".join(k.key for k in KEYS if k.key.startswith("ALERT_"))),
]


@pytest.mark.parametrize(("env", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_value_is_refused_with_one_line_naming_the_key_and_nothing_written(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "alertmanager"
    with pytest.raises(UsageError) as err:
        write_config(state, env)
    assert str(err.value) == message
    assert "\n" not in str(err.value)
    assert err.value.exit_code == 2
    assert TOKEN not in str(err.value), "a secret value was echoed"
    assert not state.exists(), "a refused config created the folder"


def test_a_refused_value_leaves_the_previous_config_in_place(tmp_path: Path) -> None:
    good = write_config(tmp_path, env_for(("webhook",)))
    before = good.read_bytes()
    with pytest.raises(UsageError):
        write_config(tmp_path, {"ALERT_WEBHOOK_URL": "no-scheme"})
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alertmanager.yml"]


def test_written_file_is_0600_in_a_0700_folder_and_replaced_atomically(tmp_path: Path) -> None:
    folder = tmp_path / "alertmanager"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    first = write_config(folder, env_for(("webhook",)))
    inode = first.stat().st_ino
    second = write_config(folder, env_for(("slack",)))
    assert first == second == folder / "alertmanager.yml"
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert second.stat().st_ino != inode, "rewritten in place, not renamed over"
    assert second.read_text() == render(env_for(("slack",)))
    assert sorted(p.name for p in folder.iterdir()) == ["alertmanager.yml"]


def test_every_alerting_key_is_used_and_sensitive_ones_are_the_secrets() -> None:
    source = (REPO / "stackctl" / "alerting" / "render.py").read_text()
    for key in KEYS:
        if key.key.startswith("ALERT_"):
            assert f'"{key.key}"' in source, f"{key.key} is declared but never rendered"
    assert set(KINDS.values()) <= {k.key for k in KEYS}
    assert {"ALERT_WEBHOOK_URL", "ALERT_SLACK_WEBHOOK_URL",
                              "ALERT_DISCORD_WEBHOOK_URL", "ALERT_SMTP_PASSWORD"} == SENSITIVE_KEYS
    assert len({k.key for k in KEYS}) == len(KEYS)


def _rules() -> dict[str, dict]:
    groups = [g for f in sorted(RULES_DIR.glob("*.alerts.yml"))
              for g in yaml.safe_load(f.read_text())["groups"]]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def _inhibit_rules() -> dict[tuple[str, str], dict]:
    """(source alert, target matcher) -> the inhibit rule; each pair once."""
    rules = yaml.safe_load(BASE_FILE.read_text())["inhibit_rules"]
    by_pair = {}
    for rule in rules:
        ((source,), (target,)) = rule["source_matchers"], rule["target_matchers"]
        by_pair[source.removeprefix('alertname="').removesuffix('"'), target] = rule
    assert len(by_pair) == len(rules)
    return by_pair


def _symptoms(label: str) -> set[str]:
    return {name for name, r in _rules().items() if r.get("labels", {}).get(label) == "true"}


def test_the_inhibit_rules_are_exactly_these() -> None:
    assert set(_inhibit_rules()) == {
        ("FoundryLocalDown", 'foundry_symptom="true"'),
        ("FoundryLocalDown", 'gateway_symptom="true"'),
        ("FoundryAllUpstreamsDown", 'upstream_symptom="true"'),
        ("FoundryAllUpstreamsDown", 'gateway_symptom="true"'),
        ("FoundryAllUpstreamsDown", 'alertname="FoundryLocalDown"'),
    }


def test_foundry_down_inhibits_exactly_the_symptoms_it_causes() -> None:
    rule = _inhibit_rules()["FoundryLocalDown", 'foundry_symptom="true"']
    assert rule["source_matchers"] == ['alertname="FoundryLocalDown"']
    assert rule["target_matchers"] == ['foundry_symptom="true"']
    assert rule["equal"] == ["target"]
    rules = _rules()
    assert "FoundryLocalDown" in rules
    symptoms = {name for name, r in rules.items() if r.get("labels", {}).get("foundry_symptom") == "true"}
    assert symptoms == {"FoundryTTFTHigh", "FoundryChatLatencyHigh", "FoundryNoChatModelLoaded",
                        "FoundryProbeErrorRatioHigh"}
    assert "foundry_symptom" not in rules["FoundryLocalDown"].get("labels", {}), "it would inhibit itself"


def test_foundry_down_inhibits_the_gateways_real_traffic_symptoms() -> None:
    """Failing and slow real chats have the same cause; the gateway's series carry
    no exporter target, so the rule matches on the cause alone."""
    rule = _inhibit_rules()["FoundryLocalDown", 'gateway_symptom="true"']
    assert "equal" not in rule, "gateway alerts have no target label: equal would never match"
    rules = _rules()
    symptoms = _symptoms("gateway_symptom")
    assert symptoms == {"FoundryGatewayErrorRatioHigh", "FoundryGatewayTTFTHigh"}
    assert not [n for n in symptoms if "target" in rules[n].get("labels", {})]
    assert "gateway_symptom" not in rules["FoundryLocalDown"].get("labels", {}), "it would inhibit itself"


def test_all_upstreams_down_inhibits_each_hosts_warning_of_the_same_gateway() -> None:
    """Both alerts are per gateway (their expressions keep job and instance), so the
    rule matches on them: a gateway whose hosts are all out mutes its own per-host
    warnings, never another gateway's."""
    rule = _inhibit_rules()["FoundryAllUpstreamsDown", 'upstream_symptom="true"']
    assert rule["equal"] == ["job", "instance"]
    rules = _rules()
    assert _symptoms("upstream_symptom") == {"FoundryUpstreamDown"}
    assert rules["FoundryAllUpstreamsDown"]["labels"]["severity"] == "critical"
    assert rules["FoundryUpstreamDown"]["labels"]["severity"] == "warning"
    for name in ("FoundryAllUpstreamsDown", "FoundryUpstreamDown"):
        assert "on (job, instance)" in rules[name]["expr"], f"{name} is not per gateway"
    assert not {"upstream_symptom", "gateway_symptom"} & rules["FoundryAllUpstreamsDown"]["labels"].keys(), \
        "it would inhibit itself"


def test_all_upstreams_down_inhibits_the_gateways_real_traffic_symptoms() -> None:
    """No local host in rotation explains failing and slow real chats, like Foundry
    Local down does; those series are per model, with no gateway instance to match."""
    rule = _inhibit_rules()["FoundryAllUpstreamsDown", 'gateway_symptom="true"']
    assert "equal" not in rule


def test_every_alert_has_the_runbook_the_templates_print() -> None:
    template = (REPO / "alertmanager" / "templates" / "foundry.tmpl").read_text()
    assert template.count("{{ .Annotations.runbook }}") == 2  # foundry.text and the e-mail html
    for name, rule in _rules().items():
        assert rule["annotations"].get("runbook"), f"{name} has no runbook annotation"
