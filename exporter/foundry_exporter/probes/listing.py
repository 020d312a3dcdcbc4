"""Model list, loaded models and health probes, plus their pure parsers."""

from __future__ import annotations

from typing import Any

from ..config import Target
from ..httpio import ProbeFailure, auth_headers, get_json
from .base import Outcome, ProbeContext
from .urls import health_url, loaded_urls, models_url

# Loaded/listed models the canary must never pick: they cannot chat (ids name their
# family). The one list: the stack's discovery and the gateway use chat_candidates too.
_NOT_CHAT = ("whisper", "embed", "rerank", "tts", "-asr")


def parse_model_list(doc: Any) -> tuple[str, ...]:
    """Model ids from an OpenAI list (``{"data": [{"id": …}]}``) or a bare list.

    Foundry's loaded-model endpoints answer a JSON list of ids (strings) or of
    objects; both shapes and ``{"models": …}`` are accepted. Raises ValueError
    for anything else.
    """
    items = doc
    if isinstance(doc, dict):
        items = doc.get("data", doc.get("models"))
    if not isinstance(items, list):
        raise ValueError("expected a list of models")
    ids: list[str] = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("id") or item.get("name") or item.get("modelId")
        if not isinstance(item, str) or not item:
            raise ValueError("model entry without an id")
        ids.append(item)
    return tuple(dict.fromkeys(ids))


def chat_candidates(models: tuple[str, ...] | None) -> tuple[str, ...]:
    """The models a canary may use, in the server's order."""
    return tuple(m for m in models or () if not any(w in m.lower() for w in _NOT_CHAT))


async def _list(ctx: ProbeContext, target: Target, url: str) -> tuple[str, ...]:
    doc = await get_json(ctx.client, url, cap=ctx.max_body_bytes, timeout=target.module.timeout,
                         headers=auth_headers(target.module.api_key))
    try:
        return parse_model_list(doc)
    except ValueError as exc:
        raise ProbeFailure("invalid_response", str(exc)) from None


async def probe_models(ctx: ProbeContext, target: Target, _: tuple[str, ...] | None) -> Outcome:
    return Outcome(models=await _list(ctx, target, models_url(target.kind, target.url)))


async def probe_loaded(ctx: ProbeContext, target: Target, _: tuple[str, ...] | None) -> Outcome:
    """Loaded models; falls back to the classic ``/openai/loadedmodels`` on 404."""
    current, classic = loaded_urls(target.url)
    try:
        return Outcome(models=await _list(ctx, target, current))
    except ProbeFailure as exc:
        if exc.reason != "not_found":
            raise
    return Outcome(models=await _list(ctx, target, classic))


async def probe_health(ctx: ProbeContext, target: Target, _: tuple[str, ...] | None) -> Outcome:
    """Open WebUI ``GET /health``: 200 with ``{"status": true}``."""
    doc = await get_json(ctx.client, health_url(target.url), cap=ctx.max_body_bytes,
                         timeout=target.module.timeout, headers={})
    if not isinstance(doc, dict) or doc.get("status") is not True:
        raise ProbeFailure("invalid_response", f"health answered {str(doc)[:100]}")
    return Outcome()


async def list_candidates(ctx: ProbeContext, target: Target) -> tuple[str, ...]:
    """Chat-capable models for an "auto" canary when no listing ran this round."""
    if target.kind == "foundry":
        return chat_candidates((await probe_loaded(ctx, target, None)).models)
    return chat_candidates((await probe_models(ctx, target, None)).models)
