"""A throwaway stack for the e2e tier: its own compose project, env file, state
dir and free ports, so a user's own stack is never touched.

``e2e_stack`` (module scope) writes the env file and offers ``invoke(...)`` to
run the real tasks as a user would (a subprocess of .venv/bin/invoke); the
stack is brought up by the tests themselves and torn down (volumes deleted,
embedded Foundry stopped) at the end of the module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stackctl.config import envfile
from stackctl.config.settings import FOUNDRY_PORT_KEY, PORT_KEYS

from .common import FIXTURES, REPO, free_ports

INVOKE = Path(sys.executable).parent / "invoke"
STACK_MODEL_DIR = FIXTURES / "tiny-model"
# `invoke up` serves FOUNDRY_MODEL_PATH itself; a local model's id comes from its folder name.
STACK_MODEL_ID = f"{STACK_MODEL_DIR.name}-generic-cpu:1"
COMPOSE_V2 = Path(sys.executable).parent / "docker-compose"


@dataclass
class E2EStack:
    env_file: Path
    state_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return envfile.load(self.env_file)

    def process_env(self, **over: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in envfile.BY_KEY}
        env.update(STACK_ENV_FILE=str(self.env_file), STACK_COMPOSE=str(COMPOSE_V2),
                   STACK_BUILD_NETWORK="host", NO_COLOR="1", COLUMNS="200")
        env.update(self.extra_env)
        env.update(over)
        return env

    def invoke(self, *args: str, timeout: float = 900, **over: str) -> subprocess.CompletedProcess:
        t0 = time.monotonic()
        cp = subprocess.run([str(INVOKE), "-r", str(REPO), *args], env=self.process_env(**over),
                            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        sys.stderr.write(f"\n$ invoke {' '.join(args)} -> {cp.returncode} ({time.monotonic() - t0:.1f}s)\n"
                         f"{cp.stdout[-3000:]}{cp.stderr[-3000:]}\n")
        return cp

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Raw compose against this stack (as a user typing `docker compose …` would)."""
        argv = [str(COMPOSE_V2), "--project-name", self.env["COMPOSE_PROJECT_NAME"],
                "--project-directory", str(REPO), "-f", str(REPO / "compose.yaml"),
                "--env-file", str(self.env_file), *args]
        return subprocess.run(argv, env=self.process_env(), capture_output=True, text=True,
                              timeout=timeout)

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.env[key]}"


def write_env(path: Path, state_dir: Path, images: dict[str, str], **over: str) -> None:
    keys = (*PORT_KEYS, FOUNDRY_PORT_KEY)  # every published port: stacks never collide
    ports = {k: str(p) for k, p in zip(keys, free_ports(len(keys)), strict=True)}
    values = {
        "COMPOSE_PROJECT_NAME": f"flcs-e2e-{uuid.uuid4().hex[:8]}",
        "COMPOSE_PROFILES": "",  # Grafana cannot be built without a registry (README, Testing)
        "STACK_STATE_DIR": str(state_dir),
        "FOUNDRY_MODEL_PATH": str(STACK_MODEL_DIR),
        **ports, **images, **over,
    }
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    envfile.ensure(path)


@pytest.fixture(scope="module")
def e2e_stack(tmp_path_factory, stack_images):
    root = tmp_path_factory.mktemp("stack")
    images = {k: v for k, v in stack_images.items() if k.endswith("_IMAGE")}
    s = E2EStack(root / ".env", root / "state")
    write_env(s.env_file, s.state_dir, images)
    yield s
    s.invoke("down", "--volumes", "--yes", timeout=300)
    s.invoke("foundry.stop", timeout=120)
