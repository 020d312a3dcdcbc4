"""The stack's gateway configuration: this machine's Foundry only, or a fleet file.

``GATEWAY_FLEET_FILE`` (in .env) names a gateway config with several upstreams —
other machines' edge gateways (``./stack edge`` on each), a cloud — instead of
gateway/config.stack.yml. ``prepare`` checks it with the gateway's own reader and
exactly the environment the container will get, so a bad file stops ``up`` with
one line per problem before anything starts; then it writes the keys the file
names (and only those) into <state>/gateway/upstreams.env (0600) for the gateway's
container, and returns the managed keys compose reads.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import yaml

from stackctl.config.settings import FLEET_FILE_KEY, GATEWAY
from stackctl.config.stack import ROOT, Stack, private_dir
from stackctl.errors import UsageError

GATEWAY_DIR = ROOT / Path(GATEWAY.dockerfile).parent  # gateway/
STACK_CONFIG = GATEWAY_DIR / "config.stack.yml"
ENV_FILE = "upstreams.env"
# What compose hands the gateway besides the fleet file's keys (compose.yaml, gateway).
CONTAINER_ENV = ("GATEWAY_API_KEY", "GATEWAY_UPSTREAM_URL", "GATEWAY_UPSTREAM_FOLLOW")


def config_file(stack: Stack) -> Path:
    raw = stack.env.get(FLEET_FILE_KEY, "").strip()
    if not raw:
        return STACK_CONFIG
    path = Path(raw).expanduser()
    return path if path.is_absolute() else ROOT / path


def key_names(doc: object) -> list[str]:
    """The environment variables a gateway config names for upstream keys."""
    ups = doc.get("upstreams") if isinstance(doc, dict) else None
    return sorted({u["api_key_env"] for u in ups or () if isinstance(u, dict)
                   and isinstance(u.get("api_key_env"), str)})


# Stands in for Foundry's URL when the config is checked before Foundry is found.
PLACEHOLDER = {"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:52180", "GATEWAY_UPSTREAM_FOLLOW": "false"}


def check(stack: Stack, managed: dict[str, str] | None = None) -> tuple[Path, dict[str, str]]:
    """The config file and the keys it names, or UsageError listing every problem."""
    from foundry_gateway.config import ConfigError, load_config

    managed = managed or PLACEHOLDER
    path = config_file(stack)
    if not path.is_file():
        raise UsageError(f"{FLEET_FILE_KEY}={stack.env.get(FLEET_FILE_KEY)!r} in {stack.env_file}: "
                         f"no such file ({path}); copy gateway/fleet.example.yml there, or empty "
                         f"{FLEET_FILE_KEY} for this machine's Foundry only")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    names = key_names(doc)
    for i, up in enumerate((doc.get("upstreams") or []) if isinstance(doc, dict) else []):
        if isinstance(up, dict) and "ca_file" in up:
            raise UsageError(f"{path}: upstreams[{i}].ca_file: the stack's gateway runs in a "
                             "container and cannot read a CA file of this machine; give that "
                             "host a certificate from a public CA, or reach it through an SSH "
                             "tunnel (README, Several machines and a cloud)")
    keys = {n: stack.env.get(n, "") for n in names}
    environ = {k: v for k, v in {**stack.env, **managed}.items() if k in CONTAINER_ENV}
    try:
        load_config(path, {**environ, **{k: v for k, v in keys.items() if v}})
    except ConfigError as exc:
        raise UsageError(f"the gateway's config has {len(exc.problems)} problem(s) — fix them "
                         f"(keys go in {stack.env_file}):\n" + "\n".join(exc.problems)) from None
    return path, keys


def prepare(stack: Stack, managed: dict[str, str]) -> dict[str, str]:
    """Check the gateway's config; write the keys file; the managed env for compose."""
    path, keys = check(stack, managed)
    folder = private_dir(stack.state_dir / GATEWAY.name)
    env_path = folder / ENV_FILE
    text = "".join(f"{k}={v}\n" for k, v in keys.items())
    fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)
    digest = hashlib.sha256(path.read_bytes() + b"\0" + text.encode()).hexdigest()[:16]
    return {"GATEWAY_CONFIG_FILE": str(path), "GATEWAY_ENV_FILE": str(env_path),
            "GATEWAY_CONFIG_DIGEST": digest}


def is_fleet(stack: Stack) -> bool:
    return config_file(stack) != STACK_CONFIG
