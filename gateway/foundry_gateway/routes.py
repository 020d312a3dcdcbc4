"""The allowlist: which (method, path) may pass, and what everything else gets. Pure.

Paths are matched exactly (no normalisation, no prefix match), so ``..``,
percent-encoding or a trailing slash cannot reach anything but the five doors.
Model ids inside ``/v1/models/{id}`` are answered by the gateway itself, never
forwarded, so they cannot smuggle a path upstream; so are ``/healthz``,
``/metrics``, ``/gateway/activity`` (when real traffic was last seen, for
the exporter's canary) and ``/gateway/upstreams`` (the upstreams' state, for
``./stack status``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from foundry_exporter.probes.activity import ACTIVITY_PATH

# path -> (route label, allowed method)
EXACT: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("chat", "POST"),
    "/v1/embeddings": ("embeddings", "POST"),
    "/v1/models": ("models", "GET"),
    "/models/loaded": ("loaded", "GET"),
}
MODEL_PREFIX = "/v1/models/"
# Doors of Foundry Local that exist but must stay shut: 403 says "on purpose".
FORBIDDEN_PREFIXES = ("/shutdown", "/models/load", "/models/unload", "/openai/load",
                      "/openai/unload", "/v1/audio", "/v1/responses", "/status")
# Served by the gateway itself.
HEALTHZ, METRICS, ACTIVITY = "/healthz", "/metrics", ACTIVITY_PATH
UPSTREAMS = "/gateway/upstreams"  # which upstream is in rotation, with which models (status)


@dataclass(frozen=True)
class Route:
    """Where a request goes: ``name`` is a ROUTES label, or ``healthz``/``metrics``/``activity``;
    a refusal carries its status and a one-line reason."""

    name: str
    status: int = 200
    message: str = ""
    model_id: str = ""

    @property
    def refused(self) -> bool:
        return self.status != 200


def route(method: str, target: str) -> Route:
    path = target.split("?", 1)[0]
    if path == HEALTHZ:
        return _only(method, "GET", Route("healthz"), path)
    if path == METRICS:
        return _only(method, "GET", Route("metrics"), path)
    if path == ACTIVITY:
        return _only(method, "GET", Route("activity"), path)
    if path == UPSTREAMS:
        return _only(method, "GET", Route("upstreams"), path)
    if path in EXACT:
        name, allowed = EXACT[path]
        return _only(method, allowed, Route(name), path)
    if path.startswith(MODEL_PREFIX) and len(path) > len(MODEL_PREFIX):
        model_id = unquote(path[len(MODEL_PREFIX):])
        return _only(method, "GET", Route("model", model_id=model_id), path)
    if any(path == p or path.startswith(p + "/") for p in FORBIDDEN_PREFIXES):
        return Route("refused", 403, f"{path} is not allowed through the gateway")
    return Route("refused", 404, f"no route {path}; the gateway serves /v1/chat/completions, "
                 "/v1/embeddings, /v1/models and /models/loaded")


def _only(method: str, allowed: str, ok: Route, path: str) -> Route:
    if method == allowed:
        return ok
    return Route("refused", 405, f"{method} is not allowed on {path}; use {allowed}")
