"""Open WebUI's admin API as the stack uses it: sign-in with a cached token,
the stored OpenAI connection, and the reconcile that keeps it pointed at the
stack's gateway (the one door to Foundry Local) with the gateway's key.

Why reconcile: Open WebUI reads OPENAI_API_BASE_URL/KEY from the environment only
on its first start (PersistentConfig in webui.db). When the gateway's port or key
changes, or a volume from before the gateway points at Foundry directly, the stack
updates the stored connection through POST /openai/config/update — connection 0
only; users' chats, other connections and settings are untouched.

Sign-in is rate limited (15 per 3 minutes per email), so the token is cached
in the state dir (0600) and reused while GET /api/v1/auths/ accepts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from stackctl.config import envfile
from stackctl.config.stack import private_dir
from stackctl.console import cmd
from stackctl.errors import StackError

TOKEN_FILE = "openwebui-token"


class CredentialsRejected(StackError):
    """Open WebUI's users were made with other credentials than .env's (up explains whose)."""


class OpenWebUI:
    def __init__(self, base_url: str, http: httpx.Client | None = None, token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.http = http or httpx.Client(timeout=30)
        self.token = token

    # -- plumbing -----------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(self.base_url + path, headers=self._headers(), **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(self.base_url + path, headers=self._headers(), **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.delete(self.base_url + path, headers=self._headers(), **kw)

    # -- API ----------------------------------------------------------------
    def health(self) -> bool:
        try:
            return self.get("/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def signin(self, email: str, password: str) -> str:
        r = self.http.post(self.base_url + "/api/v1/auths/signin",
                           json={"email": email, "password": password})
        if r.status_code == 429:
            raise StackError("Open WebUI sign-in is rate limited (15 per 3 min) — wait 3 minutes and retry")
        if r.status_code in (400, 401, 403):
            raise CredentialsRejected(
                "Open WebUI rejected the admin credentials from .env (WEBUI_ADMIN_EMAIL/PASSWORD) — "
                "restore the .env its users were made with, or set the admin's password to this "
                f"one with `{cmd('reset-admin')}`"
            )
        r.raise_for_status()
        self.token = r.json()["token"]
        return self.token

    def token_valid(self) -> bool:
        if not self.token:
            return False
        try:
            return self.get("/api/v1/auths/").status_code == 200
        except httpx.HTTPError:
            return False

    def openai_config(self) -> dict[str, Any]:
        r = self.get("/openai/config")
        r.raise_for_status()
        return r.json()

    def update_openai_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        r = self.post("/openai/config/update", json=cfg)
        r.raise_for_status()
        return r.json()

    def models(self, refresh: bool = True) -> list[str]:
        r = self.get("/api/models", params={"refresh": "true"} if refresh else None)
        r.raise_for_status()
        return [m["id"] for m in r.json().get("data", [])]


def login(ui: OpenWebUI, email: str, password: str, state_dir: Path) -> OpenWebUI:
    """Reuse the cached token if Open WebUI still accepts it, else sign in and cache."""
    path = state_dir / TOKEN_FILE
    if path.exists():
        ui.token = path.read_text().strip()
        if ui.token_valid():
            return ui
    ui.signin(email, password)
    private_dir(state_dir)
    envfile.write_atomic(path, ui.token or "")  # 0600 whatever mode an older file had
    return ui


def desired_openai_config(current: dict[str, Any], openai_url: str, key: str) -> dict[str, Any] | None:
    """The connection config with entry 0 pointed at ``openai_url`` (the gateway) with
    ``key``, enabled, and no static ``model_ids`` allowlist: the gateway's /v1/models
    answers exactly the loaded chat models, so Open WebUI's list follows loads and
    unloads by itself. None when ``current`` already says so. Pure.

    Other connections (index ≥ 1) and any other per-connection settings the
    admin made on entry 0 (prefix, tags) are kept.
    """
    urls = list(current.get("OPENAI_API_BASE_URLS") or [])
    keys = list(current.get("OPENAI_API_KEYS") or [])
    configs = dict(current.get("OPENAI_API_CONFIGS") or {})
    while len(keys) < len(urls):
        keys.append("")
    entry = dict(configs.get("0") or {})
    want_entry = {k: v for k, v in entry.items() if k != "model_ids"} | {"enable": True}
    if (urls[:1] == [openai_url] and keys[:1] == [key] and current.get("ENABLE_OPENAI_API") is True
            and entry.get("enable", True) is True and not entry.get("model_ids")):
        return None
    if urls:
        urls[0], keys[0] = openai_url, key
    else:
        urls, keys = [openai_url], [key]
    configs["0"] = want_entry
    return {
        "ENABLE_OPENAI_API": True,
        "OPENAI_API_BASE_URLS": urls,
        "OPENAI_API_KEYS": keys[: len(urls)],
        "OPENAI_API_CONFIGS": configs,
    }


def reconcile(ui: OpenWebUI, openai_url: str, key: str) -> bool:
    """Apply desired_openai_config; True if Open WebUI's stored config changed."""
    want = desired_openai_config(ui.openai_config(), openai_url, key)
    if want is None:
        return False
    ui.update_openai_config(want)
    return True
