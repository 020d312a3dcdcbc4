"""The .env keys of alerting, as stackctl/config/settings.py declares them (section
"alerting"; the service's own port, image and config-dir keys sit in the stack,
images and managed sections there).

``sensitive`` means "never print, log or export the value" (webhook URLs carry
tokens, the SMTP password). It is NOT Setting's ``secret``, which means
"generate a random value on first run": a generated webhook URL would be wrong.
"""

from __future__ import annotations

from stackctl.config.settings import SETTINGS, Setting

AlertKey = Setting  # the name this package used before the keys joined settings.py

KEYS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.section == "alerting")
BY_KEY: dict[str, Setting] = {k.key: k for k in KEYS}
SENSITIVE_KEYS: frozenset[str] = frozenset(k.key for k in KEYS if k.sensitive)
