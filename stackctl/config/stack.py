"""Where the stack lives: project root, .env, state dir, and the values in .env.

The one precedence rule, for every command: values come from .env and only from
.env. The shell environment never overrides a settings key (compose runs with
those keys removed), so every command and every container see the same values;
options that set a value (`up --model`) write it to .env. The only variable read
from the shell is STACK_ENV_FILE, which chooses the file: tests point it at
their own, so they never touch a user's stack (own project name, state dir, ports).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from stackctl.config import envfile
from stackctl.config.settings import BY_KEY, KEEPER, SERVICES, SETTINGS
from stackctl.errors import StackError

ROOT = Path(__file__).resolve().parents[2]  # the project: stackctl/config/stack.py → ../../..


@dataclass(frozen=True)
class Stack:
    root: Path
    env_file: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return self.env["COMPOSE_PROJECT_NAME"]

    @property
    def state_dir(self) -> Path:
        p = Path(self.env.get("STACK_STATE_DIR") or BY_KEY["STACK_STATE_DIR"].default).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def profiles(self) -> tuple[str, ...]:
        """COMPOSE_PROFILES, plus the keeper's on Linux: it serves Foundry on the host's
        loopback, which only a Linux Engine shares with containers (host networking)."""
        chosen = tuple(p.strip() for p in self.env.get("COMPOSE_PROFILES", "").split(",") if p.strip())
        return chosen + ((KEEPER.profile,) if sys.platform.startswith("linux") else ())

    @property
    def bind(self) -> str:
        return self.env["STACK_BIND_ADDRESS"]

    def host_url(self, port_key: str) -> str:
        """URL of a published service as the user's browser reaches it."""
        host = "localhost" if self.bind in ("0.0.0.0", "::", "127.0.0.1") else self.bind
        return f"http://{host}:{self.env[port_key]}"

    def api_url(self, port_key: str) -> str:
        """URL the stack's own tooling calls (loopback when bound to all addresses)."""
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "::") else self.bind
        return f"http://{host}:{self.env[port_key]}"

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(s.name for s in SERVICES if not s.profile or s.profile in self.profiles)

    @property
    def urls(self) -> dict[str, str]:
        """Service name → the URL people open, for every enabled service."""
        return {s.name: self.host_url(s.port_key) + s.url_path
                for s in SERVICES if s.name in self.services and not s.internal}

    def with_env(self, env: dict[str, str]) -> Stack:
        return Stack(self.root, self.env_file, env)


def private_dir(path: Path) -> Path:
    """Create ``path`` if needed and make it 0700 (it holds tokens, pids, logs)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def env_file_path(root: Path = ROOT) -> Path:
    p = os.environ.get("STACK_ENV_FILE")
    return Path(p).resolve() if p else root / ".env"


def ensure_stack(root: Path = ROOT) -> tuple[Stack, list[str]]:
    """Create/complete .env (0600, idempotent) and return the Stack plus keys added."""
    path = env_file_path(root)
    _, added = envfile.ensure(path)
    return Stack(root, path, envfile.load(path)), added


def settled_stack(root: Path = ROOT) -> Stack:
    """The Stack from .env when it exists, else from the settings' defaults (nothing
    written): for commands that may run before the first `up` (foundry.*)."""
    path = env_file_path(root)
    if path.exists():
        return Stack(root, path, envfile.load(path))
    return Stack(root, path, {s.key: s.default for s in SETTINGS})


def state_dir_of(root: Path = ROOT) -> Path:
    """The state dir from .env as far as it can be read, else the default: what the stack
    lock needs before `up` has created, completed or repaired .env (a .env without its
    generated secrets must not stop the `up` that generates them)."""
    path = env_file_path(root)
    env = {s.key: s.default for s in SETTINGS}
    try:
        if path.exists():
            env |= {k: v for k, v in envfile.values(envfile.read(path)).items() if v}
    except StackError:  # an unreadable .env: the command itself says what is wrong
        pass
    return Stack(root, path, env).state_dir


def load_stack(root: Path = ROOT) -> Stack:
    """The Stack from an existing .env (UsageError naming the fix if missing/bad)."""
    path = env_file_path(root)
    return Stack(root, path, envfile.load(path))
