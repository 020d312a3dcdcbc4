"""Render Alertmanager's config from .env values; write it 0600.

Invariants:
- ``render`` is pure: the .env mapping (and the committed base file) in, YAML out.
- Every problem is a UsageError with one line naming the .env key; the value of
  a sensitive key (webhook URLs carry tokens) is never echoed.
- ``write_config`` renders before it touches the disk, so a bad value writes
  nothing; the file appears atomically (rename) with mode 0600 in a 0700 folder.
- Only receivers both Debian's Alertmanager 0.25 and the pinned image accept:
  webhook, slack, discord (0.25+), email. msteams_configs is 0.26+.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from ..config.settings import ALERTMANAGER
from ..errors import UsageError
from .keys import BY_KEY, KEYS

# The project folder of the service is named like it (alertmanager/).
BASE_FILE = Path(__file__).resolve().parents[2] / ALERTMANAGER.name / "alertmanager.base.yml"
TEMPLATES_DIR = BASE_FILE.parent / "templates"
TEMPLATES_IN_CONTAINER = "/etc/alertmanager/templates"  # compose mounts alertmanager/templates here
CONFIG_NAME = "alertmanager.yml"
NOTIFY = "stack-notify"
NULL = "null"

# kind -> the key whose presence enables it
KINDS: dict[str, str] = {
    "webhook": "ALERT_WEBHOOK_URL",
    "slack": "ALERT_SLACK_WEBHOOK_URL",
    "discord": "ALERT_DISCORD_WEBHOOK_URL",
    "email": "ALERT_EMAIL_TO",
}
_UNSUPPORTED = {
    "msteams": "Microsoft Teams needs Alertmanager 0.26+ (msteams_configs); this stack stays "
    "inside 0.25: post to a relay with ALERT_WEBHOOK_URL",
}
_UNSUPPORTED["teams"] = _UNSUPPORTED["msteams"]

_EMAIL = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+$")
_SMARTHOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_MIN_REPEAT_S = 300  # below group_interval Alertmanager cannot honour it


@dataclass(frozen=True)
class Timings:
    """Route timings; the defaults are the base file's. Tests shorten them."""

    group_wait: str | None = None
    group_interval: str | None = None


def _values(env: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(k for k in env if k.startswith("ALERT_") and k not in BY_KEY)
    if unknown:
        known = ", ".join(k.key for k in KEYS if k.key.startswith("ALERT_"))
        raise UsageError(f"{unknown[0]} in .env is not an alerting key; known: {known}")
    return {k.key: (env.get(k.key) or k.default).strip() for k in KEYS}


def _check_url(key: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
        raise UsageError(
            f"{key} in .env is not an http(s) URL with a host; write it in full, "
            "e.g. https://host/path (value not shown: it may hold a token)"
        )


def _check_emails(key: str, value: str) -> list[str]:
    addresses = [a.strip() for a in value.split(",")]
    for a in addresses:
        if not _EMAIL.match(a):
            raise UsageError(f"{key} in .env: {a!r} is not an e-mail address (name@example.com)")
    return addresses


def _seconds(key: str, value: str) -> int:
    m = _DURATION.match(value)
    if not value or not m:
        raise UsageError(f"{key} in .env: {value!r} is not a duration like 30m, 4h or 1d")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def enabled_receivers(env: Mapping[str, str]) -> tuple[str, ...]:
    """The receiver kinds that will be notified, in KINDS order; () means nobody.

    Validates ALERT_RECEIVERS against the keys that are set (raises UsageError).
    """
    v = _values(env)
    configured = [kind for kind, key in KINDS.items() if v[key]]
    if not v["ALERT_RECEIVERS"]:
        return tuple(configured)
    listed = [k.strip().lower() for k in v["ALERT_RECEIVERS"].split(",") if k.strip()]
    for kind in listed:
        if kind in _UNSUPPORTED:
            raise UsageError(f"ALERT_RECEIVERS in .env names {kind!r}: {_UNSUPPORTED[kind]}")
        if kind not in KINDS:
            raise UsageError(
                f"ALERT_RECEIVERS in .env names an unknown receiver kind {kind!r}; "
                f"known: {', '.join(KINDS)}"
            )
        if kind not in configured:
            raise UsageError(f"ALERT_RECEIVERS in .env lists {kind!r} but {KINDS[kind]} is empty")
    return tuple(k for k in KINDS if k in listed)


def _email_config(v: dict[str, str]) -> dict:
    to = _check_emails("ALERT_EMAIL_TO", v["ALERT_EMAIL_TO"])
    for key, fix in (("ALERT_EMAIL_FROM", "the sender address"),
                     ("ALERT_SMTP_SMARTHOST", "host:port of your mail server")):
        if not v[key]:
            raise UsageError(f"{key} in .env is empty but ALERT_EMAIL_TO is set; set it to {fix}")
    (sender,) = _check_emails("ALERT_EMAIL_FROM", v["ALERT_EMAIL_FROM"]) or [""]
    m = _SMARTHOST.match(v["ALERT_SMTP_SMARTHOST"])
    if not m or not 0 < int(m.group(1)) < 65536:
        raise UsageError(
            f"ALERT_SMTP_SMARTHOST in .env: {v['ALERT_SMTP_SMARTHOST']!r} is not host:port "
            "(e.g. smtp.example.com:587)"
        )
    tls = v["ALERT_SMTP_REQUIRE_TLS"].lower()
    if tls not in ("true", "false"):
        raise UsageError(f"ALERT_SMTP_REQUIRE_TLS in .env: {tls!r} is not true or false")
    if v["ALERT_SMTP_PASSWORD"] and not v["ALERT_SMTP_USERNAME"]:
        raise UsageError("ALERT_SMTP_USERNAME in .env is empty but ALERT_SMTP_PASSWORD is set")
    config = {
        "to": ", ".join(to),
        "from": sender,
        "smarthost": v["ALERT_SMTP_SMARTHOST"],
        "require_tls": tls == "true",
        "send_resolved": True,
        "headers": {"Subject": '{{ template "foundry.title" . }}'},
        "html": '{{ template "foundry.email.html" . }}',
        "text": '{{ template "foundry.text" . }}',
    }
    if v["ALERT_SMTP_USERNAME"]:
        config["auth_username"] = v["ALERT_SMTP_USERNAME"]
        config["auth_password"] = v["ALERT_SMTP_PASSWORD"]
    return config


def _receiver(kinds: tuple[str, ...], v: dict[str, str]) -> dict:
    receiver: dict = {"name": NOTIFY}
    if "webhook" in kinds:
        receiver["webhook_configs"] = [{"url": v["ALERT_WEBHOOK_URL"], "send_resolved": True}]
    if "slack" in kinds:
        slack = {"api_url": v["ALERT_SLACK_WEBHOOK_URL"], "send_resolved": True,
                 "title": '{{ template "foundry.title" . }}',
                 "text": '{{ template "foundry.text" . }}'}
        if v["ALERT_SLACK_CHANNEL"]:
            slack["channel"] = v["ALERT_SLACK_CHANNEL"]
        receiver["slack_configs"] = [slack]
    if "discord" in kinds:
        receiver["discord_configs"] = [{"webhook_url": v["ALERT_DISCORD_WEBHOOK_URL"],
                                        "send_resolved": True,
                                        "title": '{{ template "foundry.title" . }}',
                                        "message": '{{ template "foundry.text" . }}'}]
    if "email" in kinds:
        receiver["email_configs"] = [_email_config(v)]
    return receiver


def render(
    env: Mapping[str, str],
    *,
    templates_dir: str = TEMPLATES_IN_CONTAINER,
    timings: Timings = Timings(),
    base_file: Path = BASE_FILE,
) -> str:
    """alertmanager.yml for the .env values in ``env`` (other keys are ignored).

    ``templates_dir`` is where alertmanager/templates is seen by the Alertmanager
    that reads the file (the container path by default).
    """
    v = _values(env)
    for key in ("ALERT_WEBHOOK_URL", "ALERT_SLACK_WEBHOOK_URL", "ALERT_DISCORD_WEBHOOK_URL"):
        if v[key]:
            _check_url(key, v[key])
    if v["ALERT_SLACK_CHANNEL"] and not v["ALERT_SLACK_WEBHOOK_URL"]:
        raise UsageError("ALERT_SLACK_CHANNEL in .env is set but ALERT_SLACK_WEBHOOK_URL is empty")
    if _seconds("ALERT_REPEAT_INTERVAL", v["ALERT_REPEAT_INTERVAL"]) < _MIN_REPEAT_S:
        raise UsageError(
            f"ALERT_REPEAT_INTERVAL in .env: {v['ALERT_REPEAT_INTERVAL']!r} is shorter than 5m "
            "(the grouping interval); use e.g. 1h"
        )
    kinds = enabled_receivers(env)
    if v["ALERT_EMAIL_TO"] and "email" not in kinds:
        _email_config(v)  # a disabled receiver's bad value is still a mistake worth naming

    doc = yaml.safe_load(base_file.read_text())
    doc["templates"] = [f"{templates_dir.rstrip('/')}/*.tmpl"]
    route = doc["route"]
    route["receiver"] = NOTIFY if kinds else NULL
    route["repeat_interval"] = v["ALERT_REPEAT_INTERVAL"]
    if timings.group_wait:
        route["group_wait"] = timings.group_wait
    if timings.group_interval:
        route["group_interval"] = timings.group_interval
    doc["receivers"] = [{"name": NULL}] + ([_receiver(kinds, v)] if kinds else [])
    header = (
        "# Rendered by stackctl/alerting from .env and alertmanager/alertmanager.base.yml.\n"
        f"# Receivers: {', '.join(kinds) or 'none (alerts show in status and Grafana only)'}.\n"
        "# Holds secrets (webhook URLs, SMTP password): mode 0600, never commit or share it.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def write_config(directory: Path, env: Mapping[str, str], **render_options) -> Path:
    """Render and write ``directory``/alertmanager.yml atomically, mode 0600.

    Raises UsageError before touching the disk when a value is bad.
    """
    text = render(env, **render_options)
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{CONFIG_NAME}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        target = directory / CONFIG_NAME
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# Test-only knobs (like STACK_ENV_FILE, read from the process environment, never
# from .env): the e2e tier shortens the grouping waits so a notification follows
# an alert within seconds. Users leave them unset: the base file's 30s / 5m hold.
TIMING_ENV = {"group_wait": "STACK_TEST_ALERT_GROUP_WAIT",
              "group_interval": "STACK_TEST_ALERT_GROUP_INTERVAL"}


def timings_from(environ: Mapping[str, str]) -> Timings:
    """Timings from the test-only variables in ``environ`` (unset: the base file's)."""
    values = {}
    for field_name, var in TIMING_ENV.items():
        value = environ.get(var, "").strip()
        if value:
            if not value or not _DURATION.match(value):  # refused, not passed on to Alertmanager
                raise UsageError(f"{var}={value!r} (a test-only variable) is not a duration like 1s")
            values[field_name] = value
    return Timings(**values)


def ensure_config(directory: Path, env: Mapping[str, str], **render_options) -> tuple[Path, bool]:
    """write_config, but only when the text differs: (path, whether it changed).

    Raises UsageError before touching the disk when a value is bad.
    """
    target = Path(directory) / CONFIG_NAME
    text = render(env, **render_options)
    if target.is_file() and target.read_text(encoding="utf-8") == text \
            and stat.S_IMODE(target.stat().st_mode) == 0o600:
        os.chmod(directory, 0o700)
        return target, False
    return write_config(directory, env, **render_options), True


def config_dir(stack) -> Path:
    """<STACK_STATE_DIR>/alertmanager of ``stack`` (a config.stack.Stack): 0700, holds the
    rendered config (secrets); compose mounts it as ALERTMANAGER_CONFIG_DIR."""
    return stack.state_dir / ALERTMANAGER.name


def config_is_current(stack) -> bool:
    """Whether the rendered config is what .env describes now (UsageError on a bad value)."""
    rendered = config_dir(stack) / CONFIG_NAME
    text = render(stack.env, timings=timings_from(os.environ))
    return rendered.is_file() and rendered.read_text(encoding="utf-8") == text
