"""Docker Compose, v2 or v1: finding it and running it against this stack.

Invariant: every compose call names the project, compose file, env file and
profiles explicitly, and runs with the SETTINGS keys removed from the process
environment, so .env is the single source of every value (a stray exported
OPENWEBUI_PORT in the user's shell cannot silently win over .env).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stackctl.config.settings import BY_KEY
from stackctl.config.stack import Stack
from stackctl.console import cmd
from stackctl.errors import StackError

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class Compose:
    argv: tuple[str, ...]  # e.g. ("docker", "compose") or ("/usr/bin/docker-compose",)
    version: str

    @property
    def label(self) -> str:
        return f"{' '.join(self.argv)} {self.version}"


def parse_version(output: str) -> str | None:
    """Version from `compose version` output of v1 ('docker-compose version 1.29.2, build …')
    or v2 ('Docker Compose version v2.29.1' / '--short' → '2.29.1')."""
    m = re.search(r"v?(\d+\.\d+\.\d+)", output)
    return m.group(1) if m else None


def candidates() -> list[tuple[str, ...]]:
    explicit = os.environ.get("STACK_COMPOSE")
    if explicit:
        return [tuple(explicit.split())]
    out: list[tuple[str, ...]] = []
    if shutil.which("docker"):
        out.append(("docker", "compose"))
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.exists():
        out.append((str(beside),))
    found = shutil.which("docker-compose")
    if found and found != str(beside):
        out.append((found,))
    return out


def find(run: Runner = subprocess.run) -> Compose:
    """The first working compose; prefers v2. Raises StackError if none works."""
    tried = []
    for argv in candidates():
        try:
            cp = run([*argv, "version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            tried.append(" ".join(argv))
            continue
        version = parse_version(cp.stdout or "") if cp.returncode == 0 else None
        if version:
            return Compose(argv, version)
        tried.append(" ".join(argv))
    raise StackError(
        "Docker Compose not found (tried: " + (", ".join(tried) or "docker compose, docker-compose")
        + ") — install Docker Desktop or the docker-compose-plugin package, or set STACK_COMPOSE",
        exit_code=2,
    )


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in BY_KEY}


def command(compose: Compose, stack: Stack, *args: str) -> list[str]:
    argv = [
        *compose.argv,
        "--project-name", stack.project,
        "--project-directory", str(stack.root),
        "-f", str(stack.root / "compose.yaml"),
        "--env-file", str(stack.env_file),
    ]
    for p in stack.profiles:
        argv += ["--profile", p]
    return [*argv, *args]


def run(compose: Compose, stack: Stack, *args: str, capture: bool = False,
        check: bool = True, runner: Runner = subprocess.run,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    argv = command(compose, stack, *args)
    cp = runner(argv, env=clean_environ(), cwd=stack.root, text=True,
                capture_output=capture, timeout=timeout)
    if check and cp.returncode != 0:
        detail = _last_line(cp.stderr) if capture else ""
        raise StackError(
            f"`compose {' '.join(args)}` failed (exit {cp.returncode})"
            + (f": {detail}" if detail else "") + f" — see the output above or `{cmd('logs')}`"
        )
    return cp


def _last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def services_arg(stack: Stack, services: Sequence[str]) -> list[str]:
    unknown = [s for s in services if s not in stack.services]
    if unknown:
        raise StackError(
            f"unknown service {unknown[0]!r} — choose one of: {', '.join(stack.services)}", exit_code=2
        )
    return list(services)
