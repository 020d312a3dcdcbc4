"""Pure URL helpers: service roots, OpenAI base URLs, the container view, CLI output.

Invariants: nothing here does I/O; a *root* URL is ``scheme://host:port`` with
no trailing slash and no API path; OpenAI base URLs end in ``/v1`` with no
trailing slash (what Open WebUI and the openai client expect).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

CONTAINER_HOST = "host.docker.internal"
LOCAL_PREFIX = "/catalogs/local"  # BYOM models are served only under this prefix

# Paths a status line or a user may append to the service root.
_API_SUFFIXES = ("/openai/status", "/openai", "/status", "/v1", LOCAL_PREFIX + "/v1", LOCAL_PREFIX)
_URL_RE = re.compile(r"https?://[^\s'\"<>()\[\]]+")


def root_url(url: str) -> str:
    """``http://127.0.0.1:5273/openai/status`` -> ``http://127.0.0.1:5273``.

    Known API suffixes are stripped; any other path prefix is kept (a reverse
    proxy may mount the service under one).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    stripped = True
    while stripped and path:
        stripped = False
        for suffix in _API_SUFFIXES:
            if path.endswith(suffix):
                path = path[: -len(suffix)].rstrip("/")
                stripped = True
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def openai_base(root: str, *, local: bool = False) -> str:
    """The OpenAI-compatible base URL under ``root`` (public or local catalog)."""
    return root.rstrip("/") + (LOCAL_PREFIX if local else "") + "/v1"


def models_prefix(root: str, *, local: bool = False) -> str:
    """Prefix of the SDK management routes (``/models/loaded``, ``/models/load/…``)."""
    return root.rstrip("/") + (LOCAL_PREFIX if local else "")


def container_url(url: str, host: str = CONTAINER_HOST) -> str:
    """The same URL as a container sees the host: hostname replaced, port and path kept.

    ``http://127.0.0.1:52180/catalogs/local/v1`` ->
    ``http://host.docker.internal:52180/catalogs/local/v1``.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"not a URL with a host: {url!r}")
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if parts.username:
        auth = parts.username + (f":{parts.password}" if parts.password else "")
        netloc = f"{auth}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def first_url(text: str) -> str | None:
    """The first http(s) URL in CLI output, trailing punctuation removed, or None."""
    match = _URL_RE.search(text)
    return match.group(0).rstrip(".,;:!") if match else None


def bind_urls(hosts: list[str], port: int) -> str:
    """The SDK's ``web.urls`` value: one ``http://HOST:PORT`` per host, ``;``-separated."""
    return ";".join(f"http://{_host_for_url(h)}:{port}" for h in dict.fromkeys(hosts))


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
