"""Foundry Local on the host: find it (``discover``) or serve one (``serve``/``stop``/``status``).

Modules: ``discovery`` (where is it, which generation, which chat models),
``urls`` (pure URL helpers incl. the container view), ``lifecycle`` (the
embedded server's launcher side), ``server`` (the server process itself),
``runtime`` (foundry-local-sdk adapter), ``state`` (the state file),
``bridge`` (Docker bridge gateway), ``tasks`` (the invoke collection).

The SDK is imported lazily: everything but the server process works without it.
"""

from __future__ import annotations

from stackctl.foundry.discovery import Discovery, discover
from stackctl.foundry.lifecycle import ServerStatus, StopResult, serve, status, stop
from stackctl.foundry.state import ServerState
from stackctl.foundry.urls import container_url, openai_base, root_url

__all__ = [
    "Discovery",
    "ServerState",
    "ServerStatus",
    "StopResult",
    "container_url",
    "discover",
    "openai_base",
    "root_url",
    "serve",
    "status",
    "stop",
]
