"""The allowlist: five doors, everything else refused with the right status."""

from __future__ import annotations

import pytest

from foundry_gateway.routes import route


@pytest.mark.parametrize(("method", "target", "name"), [
    ("POST", "/v1/chat/completions", "chat"),
    ("POST", "/v1/embeddings", "embeddings"),
    ("GET", "/v1/models", "models"),
    ("GET", "/v1/models?x=1", "models"),
    ("GET", "/models/loaded", "loaded"),
    ("GET", "/healthz", "healthz"),
    ("GET", "/metrics", "metrics"),
    ("GET", "/gateway/activity", "activity"),
])
def test_allowed(method: str, target: str, name: str) -> None:
    r = route(method, target)
    assert (r.name, r.status) == (name, 200)


def test_model_id_is_decoded_and_answered_locally() -> None:
    r = route("GET", "/v1/models/tiny-chat-generic-cpu%3A1")
    assert (r.name, r.model_id, r.status) == ("model", "tiny-chat-generic-cpu:1", 200)


@pytest.mark.parametrize(("method", "target", "status"), [
    ("POST", "/shutdown", 403),
    ("GET", "/models/load/tiny-chat", 403),
    ("GET", "/models/unload/tiny-chat", 403),
    ("GET", "/openai/load/phi", 403),
    ("POST", "/v1/audio/transcriptions", 403),
    ("POST", "/v1/responses", 403),
    ("GET", "/status", 403),
    ("GET", "/", 404),
    ("GET", "/catalogs/local/v1/models", 404),
    ("POST", "/v1/chat/completions/", 404),
    ("POST", "/v1/chat%2Fcompletions", 404),
    ("POST", "/v1/../shutdown", 404),
    ("GET", "/v1/chat/completions", 405),
    ("DELETE", "/v1/models", 405),
    ("POST", "/models/loaded", 405),
    ("HEAD", "/healthz", 405),
    ("POST", "/gateway/activity", 405),
    ("GET", "/gateway/activity/", 404),
    ("GET", "/gateway", 404),
    ("GET", "/gateway/activity%2F", 404),
])
def test_refused(method: str, target: str, status: int) -> None:
    r = route(method, target)
    assert (r.name, r.status) == ("refused", status)
    assert r.message
