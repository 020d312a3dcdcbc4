"""The gateway's configuration: typed, frozen, strict (the exporter's readers).

``load_config`` returns a complete :class:`Config` or raises
:class:`ConfigError` listing every problem at once, one line each naming the
file, the key path and the fix. Secrets come from environment variables only
and are resolved here, once; the upstream URL may be overridden from the
environment (``url_env``, default ``GATEWAY_UPSTREAM_URL``), which is how the
stack points a baked-in config at a discovered Foundry.

``upstreams`` lists one Foundry Local (the stack's default) or a fleet: local
upstreams (a Foundry on loopback, or another host's edge gateway with its key)
and optional ``cloud`` ones (OpenAI-compatible, https, key, a declared model
list). ``routing`` says where a model may go: named routes (a virtual model id
for an ordered list of real ones), a cloud fallback for local models, and the
models that must never leave the local hosts.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from foundry_exporter.config import ConfigError, load_with
from foundry_exporter.schema import Problems, q, type_name

__all__ = ["Config", "ConfigError", "Limits", "PerUser", "Route", "Routing", "Timeouts",
           "Upstream", "load_config"]

DEFAULT_LISTEN = "127.0.0.1:9180"  # loopback unless told otherwise
DEFAULT_API_KEY_ENV = "GATEWAY_API_KEY"
DEFAULT_URL_ENV = "GATEWAY_UPSTREAM_URL"
DEFAULT_FOLLOW_ENV = "GATEWAY_UPSTREAM_FOLLOW"
MIN_KEY_CHARS = 16
KEY_FIX = ("export it, e.g. export GATEWAY_API_KEY=$(python3 -c "
           "'import secrets; print(secrets.token_urlsafe(32))')")
USER_HEADERS = {"name": "x-openwebui-user-name", "id": "x-openwebui-user-id"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # the only upstreams ``follow`` may re-find
KINDS = ("local", "cloud")
AUTH_HEADERS = ("authorization", "api-key")  # Bearer <key> (OpenAI, edge) | api-key (Azure)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    first_byte: float = 300.0  # Foundry queues concurrent requests: headers can wait long
    idle: float = 60.0
    total: float = 1800.0


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 4 * 1024 * 1024
    max_response_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class PerUser:
    enabled: bool = False
    header: str = "name"  # name | id
    max_users: int = 20

    @property
    def header_name(self) -> str:
        return USER_HEADERS[self.header]


@dataclass(frozen=True)
class Upstream:
    name: str
    url: str  # no trailing slash; Foundry root, optionally + /catalogs/local
    api_key: str | None = field(default=None, repr=False)
    follow: bool = False  # re-find a loopback upstream that moved to another port (upstreams/follow.py)
    kind: str = "local"   # local (Foundry or an edge gateway) | cloud
    models: tuple[str, ...] = ()  # cloud: the models offered; local: those expected (optional)
    auth_header: str = "authorization"
    ca_file: str | None = None  # https: trust this CA bundle instead of the system's

    @property
    def cloud(self) -> bool:
        return self.kind == "cloud"


@dataclass(frozen=True)
class Route:
    """A virtual model id served by the first of ``models`` that can answer."""

    name: str
    models: tuple[str, ...]
    local_only: bool = False


@dataclass(frozen=True)
class Routing:
    routes: tuple[Route, ...] = ()
    cloud_fallback: str | None = None  # cloud model for local models no local host can take
    local_only: tuple[str, ...] = ()   # models never sent to a cloud upstream
    context_tokens: tuple[tuple[str, int], ...] = ()  # local model -> context window (tokens)

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)

    def context_of(self, model: str) -> int | None:
        return next((n for m, n in self.context_tokens if m == model), None)


@dataclass(frozen=True)
class Config:
    upstreams: tuple[Upstream, ...]
    api_key: str = field(repr=False)
    listen_addresses: tuple[str, ...] = (DEFAULT_LISTEN,)
    metrics_require_key: bool = True
    timeouts: Timeouts = Timeouts()
    limits: Limits = Limits()
    models_cache_ttl: float = 1.0
    per_user: PerUser = PerUser()
    routing: Routing = Routing()

    @property
    def upstream(self) -> Upstream:
        return self.upstreams[0]

    @property
    def fleet(self) -> bool:
        """More than one upstream or any routing: model-aware routing (pool.py)."""
        return len(self.upstreams) > 1 or self.routing != Routing()


_TOP_KEYS = ("listen_addresses", "api_key_env", "metrics_require_key", "upstreams", "timeouts",
             "limits", "models_cache_ttl", "per_user", "routing")


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read, validate and resolve the config at ``path`` (see module docstring)."""
    return load_with(parse_config, path, environ)


def parse_config(doc: Any, p: Problems, environ: dict[str, str]) -> Config | None:
    if doc is None and p.lines:
        return None
    if not isinstance(doc, dict):
        p.add("", f"expected a mapping at the top level, got {type_name(doc)}; "
              "start with `upstreams:`")
        return None
    p.mapping(doc, "", _TOP_KEYS)
    listen = _listen(doc, p)
    key_env = p.string(doc, "api_key_env", "") or DEFAULT_API_KEY_ENV
    api_key = _api_key(key_env, p, environ)
    require = _boolean(doc, "metrics_require_key", "", True, p)
    upstreams = _upstreams(doc, p, environ)
    timeouts = _timeouts(doc.get("timeouts", {}), p)
    limits = _limits(doc.get("limits", {}), p)
    ttl = p.duration(doc, "models_cache_ttl", "", 1.0)
    per_user = _per_user(doc.get("per_user", {}), p)
    routing = _routing(doc.get("routing", {}), upstreams, p)
    if api_key is None or not upstreams:
        return None
    return Config(tuple(upstreams), api_key, listen, require, timeouts, limits, ttl, per_user,
                  routing)


def _api_key(var: str, p: Problems, environ: dict[str, str]) -> str | None:
    value = environ.get(var, "")
    if not value:
        p.add("api_key_env", f"environment variable {var} is not set; {KEY_FIX.replace(DEFAULT_API_KEY_ENV, var)}")
        return None
    if len(value) < MIN_KEY_CHARS:
        p.add("api_key_env", f"{var} is {len(value)} characters; use at least {MIN_KEY_CHARS} "
              "(a generated key, not a password)")
        return None
    return value


def _listen(doc: dict, p: Problems) -> tuple[str, ...]:
    raw = doc.get("listen_addresses", [DEFAULT_LISTEN])
    if not isinstance(raw, list) or not raw:
        got = "an empty list" if raw == [] else type_name(raw)
        p.add("listen_addresses", f"expected a non-empty list of host:port, got {got}; "
              f"e.g. [{DEFAULT_LISTEN}]")
        return (DEFAULT_LISTEN,)
    out: list[str] = []
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not is_host_port(item):
            p.add(f"listen_addresses[{i}]", f"{q(item)} is not IP:port; write it like {DEFAULT_LISTEN}")
        elif item in out:
            p.add(f"listen_addresses[{i}]", f"{q(item)} is listed twice; remove one")
        else:
            out.append(item)
    return tuple(out) or (DEFAULT_LISTEN,)


def is_host_port(value: str) -> bool:
    """``IP:port`` (IPv6 in brackets) or ``localhost:port``."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return False
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _boolean(node: dict, key: str, path: str, default: bool, p: Problems) -> bool:
    value = node.get(key, default)
    if not isinstance(value, bool):
        p.add(f"{path}.{key}" if path else key, f"expected true or false, got {q(value)}")
        return default
    return value


def _upstreams(doc: dict, p: Problems, environ: dict[str, str]) -> list[Upstream]:
    if "upstreams" not in doc:
        p.add("upstreams", "missing; list the Foundry Local server, e.g. "
              "upstreams: [{name: foundry, url: http://127.0.0.1:52180}]")
        return []
    raw = doc["upstreams"]
    if not isinstance(raw, list) or not raw:
        got = "an empty list" if raw == [] else type_name(raw)
        p.add("upstreams", f"expected a list of upstreams, got {got}; e.g. "
              "upstreams: [{name: foundry, url: http://127.0.0.1:52180}]")
        return []
    out: list[Upstream] = []
    ok = True
    for i, node in enumerate(raw):
        up = _upstream(node, f"upstreams[{i}]", p, environ, first=i == 0)
        if up is None:
            ok = False
        elif any(u.name == up.name for u in out):
            p.add(f"upstreams[{i}].name", f"{q(up.name)} is used twice; give each upstream "
                  "its own name")
            ok = False
        else:
            out.append(up)
    if out and all(u.cloud for u in out):
        p.add("upstreams", "only cloud upstreams; list at least one local Foundry "
              "(the stack is local-first)")
        ok = False
    return out if ok else []


def _upstream(node: Any, path: str, p: Problems, environ: dict[str, str],
              first: bool = True) -> Upstream | None:
    node = p.mapping(node, path, ("name", "url", "url_env", "api_key_env", "follow", "follow_env",
                                  "kind", "models", "auth_header", "ca_file"))
    if node is None:
        return None
    name = p.name(node, "name", path)
    kind = p.choice(node, "kind", path, KINDS, "kind") if "kind" in node else "local"
    # The stack's variable is the first upstream's by default; others only when named.
    url_env = p.string(node, "url_env", path) or (DEFAULT_URL_ENV if first else None)
    url, key = (environ.get(url_env) or None) if url_env else None, "url_env"
    if url is None:
        url, key = p.string(node, "url", path), "url"
    if url is None:
        if "url" not in node:
            hint = f" and {url_env} is not set" if url_env else ""
            p.add(f"{path}.url", f"missing{hint}; set url: http://127.0.0.1:52180"
                  + (f" or export {url_env}" if url_env else ""))
        return None
    url = _check_url(url, f"{path}.{key}", p, kind or "local")
    host = urlsplit(url or "").hostname
    api_key = None
    if "api_key_env" in node:
        api_key = p.env(node, "api_key_env", path, environ, "export it (or put it in .env)")
    elif kind == "cloud":
        p.add(f"{path}.api_key_env", "missing; a cloud upstream needs its key: "
              "api_key_env: CLOUD_API_KEY (and the key in .env)")
    follow = _follow(node, path, p, environ) if first or "follow" in node \
        or "follow_env" in node else False
    if follow and host not in LOOPBACK_HOSTS:
        p.add(f"{path}.follow", "only a loopback upstream can be followed to a new port; "
              "set follow: false or point url at 127.0.0.1")
    models = _model_ids(node, "models", path, p)
    if kind == "cloud" and not models:
        p.add(f"{path}.models", "missing; list the cloud models to offer, e.g. "
              "models: [gpt-4o-mini] (cloud catalogs are too long to offer whole)")
    auth = "authorization"
    if "auth_header" in node:
        auth = p.choice(node, "auth_header", path, AUTH_HEADERS, "auth_header") or auth
    ca_file = p.string(node, "ca_file", path)
    if ca_file is not None and not Path(ca_file).is_file():
        p.add(f"{path}.ca_file", f"{q(ca_file)} is not a file; give the PEM CA bundle's path")
    if name is None or url is None or kind is None:
        return None
    return Upstream(name, url, api_key, follow, kind, models, auth, ca_file)


def _model_ids(node: dict, key: str, path: str, p: Problems) -> tuple[str, ...]:
    raw = node.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(m, str) and m.strip() for m in raw):
        p.add(f"{path}.{key}" if path else key, f"expected a list of model ids, got {q(raw)}")
        return ()
    if len(set(raw)) != len(raw):
        p.add(f"{path}.{key}" if path else key, "a model is listed twice; list each once")
    return tuple(dict.fromkeys(raw))


def _routing(node: Any, upstreams: list[Upstream], p: Problems) -> Routing:
    node = p.mapping(node, "routing", ("routes", "cloud_fallback", "local_only", "context_tokens"))
    if node is None:
        return Routing()
    cloud_models = {m for u in upstreams if u.cloud for m in u.models}
    declared = {m for u in upstreams for m in u.models}
    local_only = _model_ids(node, "local_only", "routing", p)
    fallback = p.string(node, "cloud_fallback", "routing")
    if fallback is not None and fallback not in cloud_models:
        fix = (f"use one of: {', '.join(sorted(cloud_models))}" if cloud_models
               else "add a cloud upstream (kind: cloud) that lists it in models")
        p.add("routing.cloud_fallback", f"{q(fallback)} is not a cloud upstream's model; {fix}")
        fallback = None
    routes: list[Route] = []
    raw = node.get("routes", [])
    if not isinstance(raw, list):
        p.add("routing.routes", f"expected a list of routes, got {type_name(raw)}")
        raw = []
    for i, item in enumerate(raw):
        path = f"routing.routes[{i}]"
        item = p.mapping(item, path, ("name", "models", "local_only"))
        if item is None:
            continue
        name = p.name(item, "name", path)
        models = _model_ids(item, "models", path, p)
        if "models" not in item or not models:
            p.add(f"{path}.models", "missing; list the real models to try, in order")
        for j, m in enumerate(models):
            if m not in declared:
                p.add(f"{path}.models[{j}]", f"{q(m)} is not offered by any upstream; add it to "
                      "an upstream's models: list or fix the name")
        if name is not None and (name in declared or any(r.name == name for r in routes)):
            p.add(f"{path}.name", f"{q(name)} is already a model or route id; pick another name")
            name = None
        only = _boolean(item, "local_only", path, False, p)
        if only and models and all(m in cloud_models for m in models):
            p.add(f"{path}.local_only", "every model of this route is a cloud model; "
                  "add a local model or set local_only: false")
        if name is not None and models:
            routes.append(Route(name, models, only))
    for j, m in enumerate(local_only):
        if m in cloud_models:
            p.add(f"routing.local_only[{j}]", f"{q(m)} is a cloud model; it cannot be local-only")
    ctx: list[tuple[str, int]] = []
    raw_ctx = node.get("context_tokens", {})
    if not isinstance(raw_ctx, dict):
        p.add("routing.context_tokens", f"expected a mapping of model: tokens, got "
              f"{type_name(raw_ctx)}")
        raw_ctx = {}
    for m in raw_ctx:
        ctx.append((str(m), p.integer(raw_ctx, m, "routing.context_tokens", 4096, 256, 10_000_000)))
    return Routing(tuple(routes), fallback, local_only, tuple(ctx))


def _follow(node: dict, path: str, p: Problems, environ: dict[str, str]) -> bool:
    """``follow`` (default false), overridden by the variable ``follow_env`` names."""
    env = p.string(node, "follow_env", path) or DEFAULT_FOLLOW_ENV
    raw = environ.get(env, "").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    if raw:
        p.add(f"{path}.follow_env", f"{env}={q(raw)} is not true or false; set it to true or false")
        return False
    return _boolean(node, "follow", path, False, p)


def _check_url(url: str, path: str, p: Problems, kind: str = "local") -> str | None:
    parts = urlsplit(url)
    if kind == "cloud" and parts.scheme != "https":
        p.add(path, f"{q(url)} is not https; a cloud upstream gets prompts and a key, so "
              "only over TLS: write https://…")
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        p.add(path, f"{q(url)} is not an http URL; write it like http://127.0.0.1:52180 "
              "(Foundry Local serves plain HTTP on loopback)")
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        p.add(path, f"{q(url)} has a query, fragment or credentials; give the base URL only")
        return None
    if parts.path.rstrip("/").endswith("/v1"):
        p.add(path, f"{q(url)} ends in /v1; give the root (Foundry: + /catalogs/local; "
              "OpenAI: https://api.openai.com), the gateway adds /v1")
        return None
    return url.rstrip("/")


def _timeouts(node: Any, p: Problems) -> Timeouts:
    node = p.mapping(node, "timeouts", ("connect", "first_byte", "idle", "total"))
    if node is None:
        return Timeouts()
    d = Timeouts()
    t = Timeouts(p.duration(node, "connect", "timeouts", d.connect),
                 p.duration(node, "first_byte", "timeouts", d.first_byte),
                 p.duration(node, "idle", "timeouts", d.idle),
                 p.duration(node, "total", "timeouts", d.total))
    if t.total < max(t.first_byte, t.idle):
        p.add("timeouts.total", f"{t.total:g}s is shorter than first_byte or idle; raise it")
    return t


def _limits(node: Any, p: Problems) -> Limits:
    node = p.mapping(node, "limits", ("max_request_bytes", "max_response_bytes"))
    if node is None:
        return Limits()
    d = Limits()
    return Limits(p.integer(node, "max_request_bytes", "limits", d.max_request_bytes, 1024, 1 << 30),
                  p.integer(node, "max_response_bytes", "limits", d.max_response_bytes,
                            1024, 1 << 34))


def _per_user(node: Any, p: Problems) -> PerUser:
    node = p.mapping(node, "per_user", ("enabled", "header", "max_users"))
    if node is None:
        return PerUser()
    enabled = _boolean(node, "enabled", "per_user", False, p)
    header = p.choice(node, "header", "per_user", tuple(USER_HEADERS), "header") \
        if "header" in node else "name"
    max_users = p.integer(node, "max_users", "per_user", 20, 1, 1000)
    return PerUser(enabled, header or "name", max_users)
