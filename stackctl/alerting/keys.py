"""The .env keys of alerting, declared once: another table to merge into
stackctl/config/settings.py (section "alerting").

``sensitive`` means "never print, log or export the value" (webhook URLs carry
tokens, the SMTP password). It is NOT settings.Setting's ``secret``, which
means "generate a random value on first run": a generated webhook URL would be
wrong. ``managed`` values are written by `invoke up`, not by hand.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlertKey:
    key: str
    default: str
    help: str
    sensitive: bool = False
    managed: bool = False


_K = AlertKey
KEYS: tuple[AlertKey, ...] = (
    # -- the service --------------------------------------------------------
    _K("ALERTMANAGER_IMAGE", "prom/alertmanager:v0.28.1", "Alertmanager image."),
    _K("ALERTMANAGER_PORT", "9093", "Host port of Alertmanager."),
    _K("ALERTMANAGER_CONFIG_DIR", "", "Folder holding the rendered alertmanager.yml (0700/0600, it holds the receivers' secrets). Set by `invoke up` to <STACK_STATE_DIR>/alertmanager.", managed=True),
    # -- who is notified: none required; empty means nobody is ---------------
    _K("ALERT_RECEIVERS", "", "Receiver kinds to notify, comma-separated (webhook, slack, discord, email). Empty: every kind whose keys below are set."),
    _K("ALERT_WEBHOOK_URL", "", "Generic webhook: Alertmanager POSTs its JSON (alerts with runbook annotations) here.", sensitive=True),
    _K("ALERT_SLACK_WEBHOOK_URL", "", "Slack incoming-webhook URL (https://hooks.slack.com/services/...).", sensitive=True),
    _K("ALERT_SLACK_CHANNEL", "", "Slack channel to post to (e.g. #alerts); empty: the webhook's own channel."),
    _K("ALERT_DISCORD_WEBHOOK_URL", "", "Discord webhook URL (https://discord.com/api/webhooks/...).", sensitive=True),
    _K("ALERT_EMAIL_TO", "", "E-mail address that receives alerts (needs ALERT_EMAIL_FROM and ALERT_SMTP_SMARTHOST)."),
    _K("ALERT_EMAIL_FROM", "", "Sender address of alert e-mails."),
    _K("ALERT_SMTP_SMARTHOST", "", "SMTP server as host:port, e.g. smtp.example.com:587."),
    _K("ALERT_SMTP_USERNAME", "", "SMTP user name; empty: no authentication."),
    _K("ALERT_SMTP_PASSWORD", "", "SMTP password.", sensitive=True),
    _K("ALERT_SMTP_REQUIRE_TLS", "true", "Require STARTTLS to the SMTP server (true/false)."),
    _K("ALERT_REPEAT_INTERVAL", "4h", "How often a still-firing alert is sent again (Prometheus duration, e.g. 4h, 1d)."),
)
del _K

BY_KEY: dict[str, AlertKey] = {k.key: k for k in KEYS}
SENSITIVE_KEYS: frozenset[str] = frozenset(k.key for k in KEYS if k.sensitive)
