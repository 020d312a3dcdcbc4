"""Alerting: Alertmanager's config rendered from .env.

    from stackctl.alerting import render, write_config, enabled_receivers

``render`` and ``enabled_receivers`` are pure; ``write_config`` validates
first and writes nothing on a bad value. The keys are declared in
stackctl/config/settings.py (section "alerting"); ``keys.KEYS`` is that section.
"""

from .keys import BY_KEY, KEYS, SENSITIVE_KEYS, AlertKey
from .render import (
    CONFIG_NAME,
    KINDS,
    TEMPLATES_IN_CONTAINER,
    Timings,
    enabled_receivers,
    ensure_config,
    render,
    timings_from,
    write_config,
)

__all__ = [
    "BY_KEY",
    "CONFIG_NAME",
    "KEYS",
    "KINDS",
    "SENSITIVE_KEYS",
    "TEMPLATES_IN_CONTAINER",
    "AlertKey",
    "Timings",
    "enabled_receivers",
    "ensure_config",
    "render",
    "timings_from",
    "write_config",
]
