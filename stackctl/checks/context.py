"""What the checks of doctor and smoke share: the Stack, one HTTP client, the
Docker client (made only when a check asks), and what earlier checks learned.

The ``need_*`` guards say why a check cannot mean anything yet (a link it stands
on is broken); the runner turns their reason into a skipped result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai

from stackctl import openwebui
from stackctl.config.stack import Stack
from stackctl.foundry import view as foundry_view

CHAT_TIMEOUT = 60.0


@dataclass
class Ctx:
    """Filled in as checks pass."""

    stack: Stack | None
    http: httpx.Client | None = None
    discover: Callable[[Stack], tuple[foundry_view.FoundryView | None, str | None]] | None = None
    view: foundry_view.FoundryView | None = None
    ui: openwebui.OpenWebUI | None = None
    signed_in: bool = False
    openwebui_up: bool = False
    stack_problem: str = ""  # why .env could not be loaded (doctor)
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._own_http = self.http is None
        if self.http is None:
            self.http = httpx.Client(timeout=httpx.Timeout(10.0), trust_env=False)
        self._docker = None

    def close(self) -> None:
        if self._own_http and self.http is not None:
            self.http.close()

    @property
    def docker(self):
        """The Docker client, made on first use (StackError with the fix if unreachable)."""
        if self._docker is None:
            from stackctl.docker import engine

            self._docker = engine.client()
        return self._docker

    @property
    def model(self) -> str | None:
        return self.view.chat_models[0] if self.view and self.view.chat_models else None

    def openai(self, base_url: str, api_key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=base_url, api_key=api_key, http_client=self.http,
                             max_retries=0, timeout=CHAT_TIMEOUT)


def need_stack(ctx: Ctx) -> str | None:
    return None if ctx.stack is not None else "needs a usable .env (see env above)"


def need_openwebui(ctx: Ctx) -> str | None:
    return None if ctx.openwebui_up else "Open WebUI is not answering"


def need_token(ctx: Ctx) -> str | None:
    return need_openwebui(ctx) or (None if ctx.signed_in else "no admin sign-in")


def need_foundry(ctx: Ctx) -> str | None:
    return need_token(ctx) or (None if ctx.view else "Foundry Local not found")


def need_model(ctx: Ctx) -> str | None:
    return need_foundry(ctx) or (None if ctx.model else "no chat model loaded in Foundry Local")
