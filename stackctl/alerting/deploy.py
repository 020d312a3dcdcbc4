"""What `invoke up` does for Alertmanager: render its config from .env into the
state dir (before anything starts, so a bad value stops `up` with nothing
started), and reload a running Alertmanager when the config changed."""

from __future__ import annotations

import os

from stackctl.alerting.client import for_stack
from stackctl.alerting.render import (
    config_dir,
    config_is_current,
    ensure_config,
    render,
    timings_from,
)
from stackctl.config.settings import ALERTMANAGER_CONFIG_KEY
from stackctl.config.stack import private_dir


def render_for(stack) -> tuple[dict[str, str], bool]:
    """Render the config for ``stack`` (a config.stack.Stack); return the managed .env
    update (ALERTMANAGER_CONFIG_DIR) and whether the file changed. UsageError naming
    the key on a bad value, nothing written."""
    folder = config_dir(stack)
    timings = timings_from(os.environ)
    render(stack.env, timings=timings)  # refuse a bad value before creating anything
    private_dir(stack.state_dir)
    _, changed = ensure_config(folder, stack.env, timings=timings)
    return {ALERTMANAGER_CONFIG_KEY: str(folder)}, changed


def reload_if_changed(stack, changed: bool, was_running: bool) -> bool:
    """POST /-/reload when the config changed under an Alertmanager that was already
    running (a fresh one read the new file at start). True if it reloaded."""
    if not (changed and was_running):
        return False
    for_stack(stack).reload()
    return True


__all__ = ["config_dir", "config_is_current", "reload_if_changed", "render_for"]
