"""Secure by default, and doctor notices when a user weakens it: Grafana's
anonymous access and signup stay off; an embedded Foundry bound to all
addresses is flagged."""

from __future__ import annotations

from pathlib import Path

import yaml

from stackctl.config.stack import Stack
from stackctl.foundry import state as state_mod
from stackctl.foundry import view as foundry_link
from stackctl.foundry.paths import FoundryPaths
from stackctl.foundry.state import ServerState

REPO = Path(__file__).resolve().parents[3]


def test_grafana_anonymous_access_and_signup_are_off():
    env = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    for f in (REPO / "grafana" / "provisioning").rglob("*.y*ml"):
        assert "anonymous" not in f.read_text().lower(), f


def test_open_webui_signup_is_closed_by_default():
    text = (REPO / "openwebui" / "openwebui.env").read_text()
    assert "\nENABLE_SIGNUP=false\n" in text


def _state(tmp_path: Path, urls: tuple[str, ...]) -> Stack:
    state_mod.write(FoundryPaths(tmp_path), ServerState(
        pid=1, port=5, root_url="http://127.0.0.1:5", urls=urls, model_id="m:1", model_alias="m",
        model_source="local", chat_base_url="http://127.0.0.1:5/v1", openai_base_urls=(),
        log_path="", started_at="", state_dir=str(tmp_path)))
    return Stack(tmp_path, tmp_path / ".env", {"STACK_STATE_DIR": str(tmp_path)})


def test_embedded_foundry_on_all_addresses_is_detected(tmp_path):
    stack = _state(tmp_path, ("http://127.0.0.1:5", "http://0.0.0.0:5"))
    assert foundry_link.embedded_binds_everywhere(stack)


def test_embedded_foundry_on_loopback_and_gateway_is_fine(tmp_path):
    stack = _state(tmp_path, ("http://127.0.0.1:5", "http://172.17.0.1:5"))
    assert not foundry_link.embedded_binds_everywhere(stack)
    assert not foundry_link.embedded_binds_everywhere(Stack(tmp_path / "x", tmp_path / ".env", {}))
