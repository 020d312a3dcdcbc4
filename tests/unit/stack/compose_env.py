"""The managed keys `up` writes, with stand-in values: what `compose config` needs."""

from __future__ import annotations

from pathlib import Path

from stackctl.fleet.stackconfig import STACK_CONFIG


def managed_for_compose(tmp_path: Path) -> dict[str, str]:
    keys = tmp_path / "upstreams.env"
    keys.write_text("")
    return {"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:1",
            "GATEWAY_LISTEN": "127.0.0.1:9180",
            "GATEWAY_CONFIG_FILE": str(STACK_CONFIG),
            "GATEWAY_ENV_FILE": str(keys),
            "GATEWAY_CONFIG_DIGEST": "0" * 16,
            "PROMETHEUS_SECRETS_DIR": str(tmp_path),
            "ALERTMANAGER_CONFIG_DIR": str(tmp_path / "alertmanager"),
            "FOUNDRY_KEEPER_STATE_DIR": str(tmp_path / "state"),
            "FOUNDRY_KEEPER_MODEL_DIR": str(tmp_path / "model"),
            "FOUNDRY_KEEPER_USER": "1000:1000"}
