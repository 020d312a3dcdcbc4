"""The .env file: parse, validate, merge with defaults, write.

Invariants:
- A value the user set is never overwritten; missing keys are appended with
  their default (or a freshly generated secret), comments and order are kept.
- The file is written atomically with mode 0600; on any validation error
  nothing is written.
- Parsing accepts what both compose v1 and v2 read the same way: KEY=VALUE,
  no quotes, no ``export``, no ``$``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stackctl.config.settings import (
    BY_KEY,
    FOUNDRY_PORT_KEY,
    IMAGE_KEYS,
    MANAGED_KEYS,
    PORT_KEYS,
    SECRET_KEYS,
    SECTION_TITLES,
    SETTINGS,
)
from stackctl.console import cmd
from stackctl.errors import UsageError

_KEY_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")


@dataclass(frozen=True)
class EnvLine:
    """One line of the file: a comment/blank (key None) or an assignment."""

    raw: str
    key: str | None = None
    value: str | None = None


def parse(text: str, source: str = ".env") -> list[EnvLine]:
    """Parse .env text; raise UsageError naming every malformed line at once."""
    lines: list[EnvLine] = []
    problems: list[str] = []
    seen: set[str] = set()
    for n, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            lines.append(EnvLine(raw))
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not _KEY_RE.match(key):
            problems.append(f"line {n}: expected KEY=VALUE, got {_clip(stripped)!r}")
            continue
        value = value.strip()
        if value[:1] in ("'", '"') or "$" in value:
            problems.append(f"line {n}: {key} has quotes or '$'; write the bare value")
            continue
        if key in seen:
            problems.append(f"line {n}: {key} is set twice; keep one")
            continue
        seen.add(key)
        lines.append(EnvLine(raw, key, value))
    if problems:
        raise UsageError(f"{source}: " + "; ".join(problems) + " — fix or delete those lines and retry")
    return lines


def values(lines: list[EnvLine]) -> dict[str, str]:
    return {ln.key: ln.value for ln in lines if ln.key is not None and ln.value is not None}


def validate(env: dict[str, str], source: str = ".env") -> None:
    """Check the values of known keys; raise one UsageError listing all problems."""
    problems: list[str] = []
    ports: dict[str, int] = {}
    for key in (*PORT_KEYS, FOUNDRY_PORT_KEY):
        v = env.get(key, "")
        if not v.isdigit() or not 1 <= int(v) <= 65535:
            problems.append(f"{key}={v!r} is not a port (1-65535)")
        else:
            ports[key] = int(v)
    clash: dict[int, str] = {}
    for key, port in ports.items():
        if port in clash:
            problems.append(f"{key} and {clash[port]} both use port {port}")
        clash[port] = key
    bind = env.get("STACK_BIND_ADDRESS", "")
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        problems.append(f"STACK_BIND_ADDRESS={bind!r} is not an IP address (127.0.0.1 or 0.0.0.0)")
    endpoint = env.get("FOUNDRY_LOCAL_ENDPOINT", "")
    if endpoint and not re.match(r"^https?://[^/\s]+(/\S*)?$", endpoint):
        problems.append(f"FOUNDRY_LOCAL_ENDPOINT={endpoint!r} is not an http(s) URL")
    for key in (*IMAGE_KEYS, "COMPOSE_PROJECT_NAME"):
        if not env.get(key):
            problems.append(f"{key} is empty")
    name = env.get("COMPOSE_PROJECT_NAME", "")
    if name and not re.match(r"^[a-z0-9][a-z0-9_-]*$", name):
        problems.append(f"COMPOSE_PROJECT_NAME={name!r}: use lowercase letters, digits, '-' and '_'")
    for key in ("WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD"):
        if key in env and len(env[key]) < 12:
            problems.append(f"{key} is shorter than 12 characters; delete the line to generate one")
    email = env.get("WEBUI_ADMIN_EMAIL", "")
    if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
        problems.append(f"WEBUI_ADMIN_EMAIL={email!r} is not an email address")
    if problems:
        raise UsageError(f"{source}: " + "; ".join(problems))


def merge(lines: list[EnvLine]) -> tuple[list[EnvLine], list[str]]:
    """Return the lines with every missing known key appended, and the keys added."""
    out: list[EnvLine] = []
    added: list[str] = []
    for ln in lines:  # an empty secret (e.g. copied from .env.example) is not a value
        if ln.key in SECRET_KEYS and not ln.value:
            value = BY_KEY[ln.key].initial_value()
            ln = EnvLine(f"{ln.key}={value}", ln.key, value)
            added.append(ln.key)
        out.append(ln)
    have = values(out)
    section = None
    for s in SETTINGS:
        if s.key in have:
            continue
        if s.section != section:
            section = s.section
            if out and out[-1].raw.strip():
                out.append(EnvLine(""))
            out.append(EnvLine(f"# {SECTION_TITLES[section]}"))
        value = s.initial_value()
        out.append(EnvLine(f"{s.key}={value}", s.key, value))
        added.append(s.key)
    return out, added


def render(lines: list[EnvLine]) -> str:
    return "".join(ln.raw + "\n" for ln in lines)


def render_example() -> str:
    """The committed .env.example: every key, its help, and its default."""
    out = [
        "# Foundry Local Chat Stack — configuration.",
        "# `./stack up` (Windows: `.\\stack up`) creates .env from these defaults (mode 0600) and never overwrites",
        "# a value you set. Secrets left empty here are generated on first run.",
    ]
    section = None
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            out += ["", f"# == {SECTION_TITLES[section]} =="]
        out.append(f"# {s.help}")
        out.append(f"{s.key}={'' if s.secret or s.managed else s.default}")
    return "\n".join(out) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (no half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".env.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure(path: Path) -> tuple[dict[str, str], list[str]]:
    """Create or complete the .env at ``path``; return (values, keys added).

    Idempotent: a complete, valid file is left byte-for-byte as it was (its
    mode is still tightened to 0600).
    """
    text = path.read_text() if path.exists() else ""
    lines = parse(text, str(path))
    merged, added = merge(lines)
    env = values(merged)
    validate(env, str(path))
    if added or not path.exists():
        write_atomic(path, render(merged))
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return env, added


def set_managed(path: Path, updates: dict[str, str]) -> bool:
    """Rewrite managed keys (see settings.MANAGED_KEYS) in place; True if anything changed.

    Only managed keys may be passed: user-owned values are never rewritten.
    """
    bad = set(updates) - MANAGED_KEYS
    if bad:
        raise ValueError(f"not managed keys: {sorted(bad)}")
    lines = parse(path.read_text(), str(path))
    merged, _ = merge(lines)
    out: list[EnvLine] = []
    changed = False
    for ln in merged:
        if ln.key in updates and ln.value != updates[ln.key]:
            ln = EnvLine(f"{ln.key}={updates[ln.key]}", ln.key, updates[ln.key])
            changed = True
        out.append(ln)
    if changed:
        write_atomic(path, render(out))
    return changed


def load(path: Path) -> dict[str, str]:
    """Read an existing .env; keys it lacks take their defaults in memory.

    Raises UsageError when the file is missing, malformed, invalid, or lacks a
    generated secret (all of which `invoke up` repairs).
    """
    if not path.exists():
        raise UsageError(f"{path} does not exist — run `{cmd('up')}` (it creates it) and retry")
    env = values(parse(path.read_text(), str(path)))
    missing = sorted(k for k in SECRET_KEYS if not env.get(k))
    if missing:
        raise UsageError(f"{path}: {', '.join(missing)} not set — run `{cmd('up')}` to generate them")
    full = {s.key: s.default for s in SETTINGS if not s.secret} | env
    validate(full, str(path))
    return full


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
