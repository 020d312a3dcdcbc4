"""The gateway as the stack wires it (stackctl.foundry.door): addresses and the files
Prometheus reads."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from stackctl.config.settings import SETTINGS
from stackctl.config.stack import Stack
from stackctl.foundry import door, supervisor


def _stack(tmp_path: Path, **env: str) -> Stack:
    base = {s.key: s.default for s in SETTINGS} | {"STACK_STATE_DIR": str(tmp_path / "state"),
                                                   "GATEWAY_API_KEY": "k" * 43} | env
    return Stack(tmp_path, tmp_path / ".env", base)


def test_containers_reach_the_gateway_not_foundry(tmp_path):
    s = _stack(tmp_path, GATEWAY_PORT="9333")
    assert door.container_openai_url(s) == "http://host.docker.internal:9333/v1"


def test_listens_on_loopback_and_the_bridge_only_when_there_is_one():
    assert door.listen_addresses(9180, "172.17.0.1") == "127.0.0.1:9180,172.17.0.1:9180"
    assert door.listen_addresses(9180, None) == "127.0.0.1:9180"  # Docker Desktop: host networking


def test_prometheus_files_are_0644_in_a_0700_folder_rewritten_in_place(tmp_path):
    s = _stack(tmp_path)
    env, changed = door.render_prometheus_secrets(s)
    folder = Path(env["PROMETHEUS_SECRETS_DIR"])
    assert changed and stat.S_IMODE(folder.stat().st_mode) == 0o700
    key, targets = folder / door.KEY_FILE, folder / door.TARGETS_FILE
    assert key.read_text() == "k" * 43 + "\n" and stat.S_IMODE(key.stat().st_mode) == 0o644
    assert json.loads(targets.read_text())[0]["targets"] == ["host.docker.internal:9180"]
    assert door.render_prometheus_secrets(s) == (env, False)  # idempotent
    inode = targets.stat().st_ino
    door.render_prometheus_secrets(_stack(tmp_path, GATEWAY_PORT="9444"))
    assert targets.stat().st_ino == inode  # a file bind mount keeps its inode: same file
    assert "host.docker.internal:9444" in targets.read_text()


def test_supervisor_describes_deaths_and_backs_off():
    import os

    assert supervisor.describe(9) == "signal SIGKILL"  # waitpid status of a SIGKILLed child
    assert supervisor.describe(1 << 8) == "exit 1"
    assert os.WIFSIGNALED(9)
    assert supervisor.next_backoff(1.0, 5.0) == 2.0
    assert supervisor.next_backoff(16.0, 5.0) == supervisor.BACKOFF_MAX_S
    assert supervisor.next_backoff(16.0, supervisor.HEALTHY_RUN_S) == supervisor.BACKOFF_FIRST_S


def test_the_gateway_follows_only_a_foundry_found_through_its_cli(tmp_path):
    assert [door.follows(src) for src in ("cli", "env", "embedded")] == [True, False, False]
    s = _stack(tmp_path)
    assert door.managed_env(s, "http://127.0.0.1:5000", None, follow=True)["GATEWAY_UPSTREAM_FOLLOW"] == "true"
    assert door.managed_env(s, "http://127.0.0.1:5000", None)["GATEWAY_UPSTREAM_FOLLOW"] == "false"
