"""The gateway as the stack wires it: the one door to Foundry Local.

Foundry Local (the user's, or the stack's embedded server) listens on loopback only.
The gateway runs in a container with host networking (Linux Engine), so it reaches
that loopback, and listens on loopback (for people and `smoke`) plus the Docker
bridge address (for containers: ``host.docker.internal:GATEWAY_PORT``). Every
request needs GATEWAY_API_KEY; Open WebUI, the exporter and Prometheus get it.

Pure but for ``render_prometheus_secrets`` (it writes two small files).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from stackctl.config.settings import GATEWAY, GATEWAY_KEY, PROMETHEUS, PROMETHEUS_SECRETS_KEY
from stackctl.config.stack import Stack, private_dir
from stackctl.foundry.urls import CONTAINER_HOST

KEY_FILE = "gateway.key"          # read by Prometheus (authorization.credentials_file)
TARGETS_FILE = "gateway.json"     # Prometheus file_sd: where the gateway is
LOOPBACK = "127.0.0.1"


def port(stack: Stack) -> int:
    return int(stack.env[GATEWAY.port_key])


def container_root(stack: Stack) -> str:
    """The gateway as containers reach it (the exporter's Foundry target)."""
    return f"http://{CONTAINER_HOST}:{port(stack)}"


def container_openai_url(stack: Stack) -> str:
    """The OpenAI base URL containers use (Open WebUI's connection)."""
    return container_root(stack) + "/v1"


def listen_addresses(gateway_port: int, bridge_ip: str | None) -> str:
    """GATEWAY_LISTEN: loopback, plus the bridge address containers reach the host on."""
    hosts = [LOOPBACK] + ([bridge_ip] if bridge_ip and bridge_ip != LOOPBACK else [])
    return ",".join(f"{h}:{gateway_port}" for h in hosts)


def follows(source: str) -> bool:
    """Whether the gateway re-finds Foundry on a new port by itself (gateway/foundry_gateway/
    upstreams/follow.py): for a Foundry discovery found through its CLI, whose port changes on each
    start — never for FOUNDRY_LOCAL_ENDPOINT (an explicit setting is not second-guessed)
    nor the embedded server (its supervisor keeps its port)."""
    return source == "cli"


def managed_env(stack: Stack, upstream_url: str, bridge_ip: str | None, *, follow: bool = False) -> dict[str, str]:
    return {"GATEWAY_UPSTREAM_URL": upstream_url,
            "GATEWAY_UPSTREAM_FOLLOW": "true" if follow else "false",
            "GATEWAY_LISTEN": listen_addresses(port(stack), bridge_ip)}


def secrets_dir(stack: Stack) -> Path:
    return stack.state_dir / PROMETHEUS.name


def render_prometheus_secrets(stack: Stack) -> tuple[dict[str, str], bool]:
    """Write the key Prometheus scrapes the gateway with, and the scrape target, into
    <state>/prometheus (0700). compose mounts each FILE (not the folder: Prometheus runs
    as ``nobody`` and could not enter a 0700 folder); the files are 0644, and the 0700
    folder keeps every other host user out. Written in place (same inode), because a
    file bind mount keeps the inode it was made with. Returns (managed env, changed)."""
    folder = private_dir(secrets_dir(stack))
    files = {
        KEY_FILE: stack.env[GATEWAY_KEY] + "\n",
        TARGETS_FILE: json.dumps([{"targets": [f"{CONTAINER_HOST}:{port(stack)}"],
                                   "labels": {"service": GATEWAY.name}}], indent=2) + "\n",
    }
    changed = False
    for name, text in files.items():
        path = folder / name
        if path.is_file() and path.read_text() == text and (path.stat().st_mode & 0o777) == 0o644:
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(text)
        changed = True
    return {PROMETHEUS_SECRETS_KEY: str(folder)}, changed
