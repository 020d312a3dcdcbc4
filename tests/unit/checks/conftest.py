"""Fixtures for the smoke unit tests (fakes in smoke_fakes.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from stackctl.checks.context import Ctx
from stackctl.config import envfile
from stackctl.config.stack import ROOT, Stack
from stackctl.foundry.view import FoundryView
from tests.unit.checks.fakes import PORTS, FakeStack, view


@pytest.fixture
def fake() -> FakeStack:
    return FakeStack()


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    env_file = tmp_path / ".env"
    envfile.ensure(env_file)
    env = {**envfile.load(env_file), **PORTS, "STACK_STATE_DIR": str(tmp_path / "state"),
           "COMPOSE_PROFILES": ""}
    return Stack(ROOT, env_file, env)


@pytest.fixture
def make_ctx(fake: FakeStack, stack: Stack):
    def make(found: FoundryView | None = None, reason: str | None = None, **env: str) -> Ctx:
        st = stack.with_env({**stack.env, **env}) if env else stack
        v = found if found is not None or reason else view()
        return Ctx(stack=st, http=httpx.Client(transport=httpx.MockTransport(fake)),
                   discover=lambda s: (v, reason))
    return make
