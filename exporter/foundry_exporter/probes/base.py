"""What every probe receives and returns."""

from __future__ import annotations

from dataclasses import dataclass

import httpx2 as httpx  # the exporter's client library (exporter/foundry_exporter/httpio.py)

from ..httpio import SYSTEM_CLOCK, Clock
from ..results import ChatStats


@dataclass(frozen=True)
class ProbeContext:
    client: httpx.AsyncClient
    clock: Clock = SYSTEM_CLOCK
    max_body_bytes: int = 8 * 1024 * 1024
    stream_client: httpx.AsyncClient | None = None  # no keep-alive; the canary's

    @property
    def canary_client(self) -> httpx.AsyncClient:
        return self.stream_client or self.client


@dataclass(frozen=True)
class Outcome:
    """A probe body's answer; ``failure`` is (reason, detail) when it ran but failed."""

    models: tuple[str, ...] | None = None
    chat: ChatStats | None = None
    failure: tuple[str, str] | None = None
