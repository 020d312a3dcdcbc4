"""The exporter's configuration: typed, frozen, strict.

``load_config`` either returns a complete :class:`Config` or raises
:class:`ConfigError` listing every problem in the file at once, each line naming
the file, the key path and the fix. Secrets (API keys) and URLs may come from
environment variables (``api_key_env``, ``url_env``); they are resolved here,
once, so nothing downstream reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .metrics import PROBES
from .schema import Problems, each, load_yaml, q, type_name, valid_name

KINDS: tuple[str, ...] = ("foundry", "openai", "openwebui")
# Which probes each kind supports, in run order; the first is the "primary" one
# that drives ``foundry_up``.
KIND_PROBES: dict[str, tuple[str, ...]] = {
    "foundry": ("models", "loaded", "chat"),
    "openai": ("models", "chat"),
    "openwebui": ("health",),
}
AUTO = "auto"  # canary model: the first loaded (or, for openai, listed) chat model
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_LISTEN = "0.0.0.0:9101"
# /probe runs a URL target's chat canary at most this often unless its module says.
DEFAULT_PROBE_CANARY_INTERVAL = 60.0


class ConfigError(Exception):
    """Every problem found in one config file; ``str()`` is one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Canary:
    model: str = AUTO
    max_tokens: int = 8
    interval: float | None = None  # None: every probe cycle
    # Skip a due round when the upstream (the stack's gateway) saw real traffic within
    # the interval: never compete with a user for a single local model.
    yield_to_traffic: bool = True


@dataclass(frozen=True)
class Module:
    """How to probe a server: everything but where it is and how often."""

    kind: str
    probes: tuple[str, ...]
    timeout: float = DEFAULT_TIMEOUT
    api_key: str | None = field(default=None, repr=False)
    canary: Canary = Canary()


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # no trailing slash; foundry: service root, optionally + /catalogs/local
    module: Module
    interval: float = DEFAULT_INTERVAL

    @property
    def kind(self) -> str:
        return self.module.kind


@dataclass(frozen=True)
class ProbeURL:
    """A URL ``/probe?target=URL&module=M`` may reach, and the only modules it may use.

    A module's API key is sent only to the URLs whose entry names that module.
    """

    url: str                    # canonical (see ``canonical_url``)
    modules: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    targets: tuple[Target, ...]
    modules: dict[str, Module]
    listen_address: str = DEFAULT_LISTEN
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    stale_after: float | None = None  # None: derived from the slowest target
    probe_urls: tuple[ProbeURL, ...] = ()  # none by default: /probe takes target names only

    def healthz_stale_after(self) -> float:
        """Seconds after which a target's last probe cycle counts as stuck."""
        if self.stale_after is not None:
            return self.stale_after
        slowest = max((t.interval + t.module.timeout for t in self.targets), default=0.0)
        return max(30.0, 2 * slowest + 5)


def builtin_modules() -> dict[str, Module]:
    """One module per kind with its default probes, for ``/probe?module=<kind>``."""
    return {k: Module(kind=k, probes=KIND_PROBES[k]) for k in KINDS}


_MODULE_KEYS = ("kind", "probes", "timeout", "api_key_env", "canary")
_TARGET_KEYS = (*_MODULE_KEYS, "name", "url", "url_env", "interval")
_TOP_KEYS = ("targets", "modules", "defaults", "listen_address", "max_body_bytes", "stale_after",
             "probe_urls")
_PROBE_URL_EXAMPLE = "{url: http://127.0.0.1:5273, modules: [foundry]}"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a base URL (http(s), a host, no credentials/query/fragment), or None.

    Looks at the raw characters, not only the parsed parts: ``http://h:1/?``
    has an empty query but would still move the probe's path into one.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "is not an http(s) URL; write it like http://127.0.0.1:5273"
    if parts.scheme not in ("http", "https") or not parts.hostname \
            or any(c.isspace() or c == "\\" for c in url):
        return "is not an http(s) URL; write it like http://127.0.0.1:5273"
    if "?" in url or "#" in url:
        return "has a query or fragment; give the base URL only"
    if "@" in parts.netloc:
        return "has credentials before @; put a key in a module's api_key_env instead"
    return None


def canonical_url(url: str) -> str:
    """The form URLs are compared in: scheme and host lower-case, no trailing slash."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}".rstrip("/")


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read, validate and resolve the config at ``path`` (see module docstring)."""
    return load_with(parse_config, path, environ)


def load_with(parse, path: str | Path, environ: dict[str, str] | None = None):
    """Read ``path`` as YAML and hand it to ``parse(doc, problems, environ)``; every
    problem found is raised at once as a ConfigError (the gateway's config uses it too)."""
    problems = Problems(str(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}; check the --config path"]) from None
    config = parse(load_yaml(text, problems), problems, dict(os.environ if environ is None else environ))
    if problems.lines:
        raise ConfigError(problems.lines)
    assert config is not None
    return config


def parse_config(doc: Any, p: Problems, environ: dict[str, str]) -> Config | None:
    if doc is None and p.lines:
        return None
    if not isinstance(doc, dict):
        p.add("", f"expected a mapping at the top level, got {type_name(doc)}; "
              "start with `targets:`")
        return None
    p.mapping(doc, "", _TOP_KEYS)
    defaults = p.mapping(doc.get("defaults", {}), "defaults", ("interval", "timeout")) or {}
    interval = p.duration(defaults, "interval", "defaults", DEFAULT_INTERVAL)
    timeout = p.duration(defaults, "timeout", "defaults", DEFAULT_TIMEOUT)

    modules = builtin_modules()
    raw_modules = doc.get("modules", {})
    if not isinstance(raw_modules, dict):
        p.add("modules", f"expected a mapping of module names, got {type_name(raw_modules)}")
        raw_modules = {}
    for name, node in raw_modules.items():
        if not isinstance(name, str) or not valid_name(name):
            p.add("modules", f'{q(name)} is not a valid module name; use letters, digits, "_", "-", "."')
            continue
        module = _module(node, f"modules.{name}", p, environ, timeout)
        if module is not None:
            modules[str(name)] = module

    targets: list[Target] = []
    if "targets" not in doc:
        p.add("targets", "missing; list the targets to probe (or `targets: []` for /probe only)")
    elif not isinstance(doc["targets"], list):
        p.add("targets", f"expected a list, got {type_name(doc['targets'])}")
    else:
        targets = each(doc["targets"], "targets",
                       lambda n, path: _target(n, path, p, environ, interval, timeout))
        seen: set[str] = set()
        for i, t in enumerate(targets):
            if t.name in seen:
                p.add(f"targets[{i}].name", f"duplicate target name {q(t.name)}; names must be unique")
            seen.add(t.name)

    listen = p.string(doc, "listen_address", "") or DEFAULT_LISTEN
    if not _is_host_port(listen):
        p.add("listen_address", f"{q(listen)} is not host:port; write it like 0.0.0.0:9101")
    max_body = p.integer(doc, "max_body_bytes", "", DEFAULT_MAX_BODY_BYTES, 1024, 1 << 30)
    stale = p.duration(doc, "stale_after", "", 0.0) if "stale_after" in doc else None
    probe_urls = _probe_urls(doc.get("probe_urls", []), p, modules)
    return Config(tuple(targets), modules, listen, max_body, stale or None, probe_urls)


def _probe_urls(node: Any, p: Problems, modules: dict[str, Module]) -> tuple[ProbeURL, ...]:
    if not isinstance(node, list):
        p.add("probe_urls", f"expected a list like [{_PROBE_URL_EXAMPLE}], got {type_name(node)}")
        return ()
    out: list[ProbeURL] = []
    first: dict[str, int] = {}
    for i, entry in enumerate(node):
        path = f"probe_urls[{i}]"
        if not isinstance(entry, dict):
            p.add(path, f"expected a mapping like {_PROBE_URL_EXAMPLE}, got {type_name(entry)}")
            continue
        p.mapping(entry, path, ("url", "modules"))
        url = p.string(entry, "url", path, required="give the exact base URL /probe may "
                       "target, e.g. url: http://127.0.0.1:5273")
        if url is not None and (problem := url_problem(url)):
            p.add(f"{path}.url", f"{q(url)} {problem}")
            url = None
        names = _module_names(entry, f"{path}.modules", p, modules)
        if url is None or names is None:
            continue
        url = canonical_url(url)
        if url in first:
            p.add(f"{path}.url", f"{q(url)} is already allowed by probe_urls[{first[url]}]; "
                  "merge the two entries' modules")
            continue
        first[url] = i
        out.append(ProbeURL(url, names))
    return tuple(out)


def _module_names(entry: dict, path: str, p: Problems,
                  modules: dict[str, Module]) -> tuple[str, ...] | None:
    if "modules" not in entry:
        p.add(path, "missing; list the modules /probe may use with this URL "
              "(their api keys are sent to it), e.g. modules: [foundry]")
        return None
    raw = entry["modules"]
    if not isinstance(raw, list) or not raw:
        got = "an empty list" if raw == [] else type_name(raw)
        p.add(path, f"expected a non-empty list of module names, got {got}; e.g. modules: [foundry]")
        return None
    names: list[str] = []
    for i, name in enumerate(raw):
        if not isinstance(name, str) or name not in modules:
            p.add(f"{path}[{i}]", f"unknown module {q(name)}; use one of: "
                  f"{', '.join(sorted(modules))} (or define it under modules:)")
            return None
        names.append(name)
    return tuple(dict.fromkeys(names))


def _module(node: Any, path: str, p: Problems, environ: dict[str, str],
            default_timeout: float, extra_keys: tuple[str, ...] = ()) -> Module | None:
    node = p.mapping(node, path, _MODULE_KEYS + extra_keys)
    if node is None:
        return None
    kind = p.choice(node, "kind", path, KINDS, "kind")
    timeout = p.duration(node, "timeout", path, default_timeout)
    api_key = None
    if "api_key_env" in node:
        api_key = p.env(node, "api_key_env", path, environ,
                        "export it or remove api_key_env") or None
    if kind is None:
        return None
    probes = _probes(node, path, p, kind)
    canary = Canary()
    if "canary" in node:
        if "chat" not in probes:
            p.add(f"{path}.canary", "set but the chat probe is not enabled; "
                  "add chat to probes or remove canary")
        canary = _canary(node["canary"], f"{path}.canary", p)
    return Module(kind, probes, timeout, api_key, canary)


def _probes(node: dict, path: str, p: Problems, kind: str) -> tuple[str, ...]:
    allowed = KIND_PROBES[kind]
    if "probes" not in node:
        return allowed
    raw = node["probes"]
    if not isinstance(raw, list) or not raw:
        got = "an empty list" if raw == [] else type_name(raw)
        p.add(f"{path}.probes", f"expected a non-empty list, got {got}; "
              f"use some of: {', '.join(allowed)}")
        return allowed
    for i, probe in enumerate(raw):
        if probe not in PROBES:
            p.add(f"{path}.probes[{i}]", f"unknown probe {q(probe)}; use some of: {', '.join(allowed)}")
        elif probe not in allowed:
            p.add(f"{path}.probes[{i}]", f"probe {q(probe)} does not apply to kind {kind}; "
                  f"use some of: {', '.join(allowed)}")
    return tuple(x for x in allowed if x in raw)  # run order is fixed, duplicates dropped


def _canary(node: Any, path: str, p: Problems) -> Canary:
    node = p.mapping(node, path, ("model", "max_tokens", "interval", "yield_to_traffic"))
    if node is None:
        return Canary()
    model = p.string(node, "model", path) or AUTO
    max_tokens = p.integer(node, "max_tokens", path, 8, 1, 256)
    interval = p.duration(node, "interval", path, 0.0) if "interval" in node else None
    yields = p.boolean(node, "yield_to_traffic", path, True)
    return Canary(model, max_tokens, interval or None, yields)


def _target(node: Any, path: str, p: Problems, environ: dict[str, str],
            default_interval: float, default_timeout: float) -> Target | None:
    if not isinstance(node, dict):
        p.add(path, f"expected a mapping, got {type_name(node)}")
        return None
    name = p.name(node, "name", path)
    module = _module(node, path, p, environ, default_timeout,
                     extra_keys=("name", "url", "url_env", "interval"))
    interval = p.duration(node, "interval", path, default_interval)
    url = _url(node, path, p, environ)
    if module is not None and module.timeout > interval:
        p.add(f"{path}.timeout", f"{module.timeout:g}s is longer than the interval {interval:g}s; "
              "lower timeout or raise interval")
    if module is not None and module.canary.interval is not None \
            and module.canary.interval < interval:
        p.add(f"{path}.canary.interval", f"{module.canary.interval:g}s is shorter than the "
              f"target interval {interval:g}s; raise it or leave it out")
    if None in (name, module, url):
        return None
    return Target(name, url, module, interval)


def _url(node: dict, path: str, p: Problems, environ: dict[str, str]) -> str | None:
    if ("url" in node) == ("url_env" in node):
        p.add(path, "set exactly one of url, url_env; e.g. url: http://127.0.0.1:5273")
        return None
    if "url" in node:
        url, key = p.string(node, "url", path), "url"
    else:
        url, key = p.env(node, "url_env", path, environ, "export it or use url: instead"), "url_env"
    if url is None:
        return None
    if problem := url_problem(url):
        p.add(f"{path}.{key}", f"{q(url)} {problem}")
        return None
    return url.rstrip("/")


def _is_host_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep) and port.isdigit() and 0 < int(port) < 65536 and "/" not in host
