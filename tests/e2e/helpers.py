"""Helpers shared by e2e modules: sign-in, condition waits, container states,
exporter samples, and a chat that must survive whatever the test does."""

from __future__ import annotations

import docker
import httpx

from stackctl import openwebui
from stackctl.docker import engine
from tests.plugins.common import wait_for


def signin(s) -> openwebui.OpenWebUI:
    env = s.env
    ui = openwebui.OpenWebUI(s.url("OPENWEBUI_PORT"))
    return openwebui.login(ui, env["WEBUI_ADMIN_EMAIL"], env["WEBUI_ADMIN_PASSWORD"], s.state_dir)


def states(s) -> dict[str, engine.ServiceState]:
    return engine.services(docker.from_env(), s.env["COMPOSE_PROJECT_NAME"])


def exporter_sample(s, name: str, **labels: str) -> float | None:
    """The value of one sample on the exporter's /metrics, or None if absent."""
    text = httpx.get(s.url("EXPORTER_PORT") + "/metrics", timeout=5).text
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def create_chat(s, model: str, title: str = "kept across restarts") -> dict:
    ui = signin(s)
    r = ui.post("/api/v1/chats/new", json={"chat": {
        "title": title, "models": [model],
        "messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]}})
    r.raise_for_status()
    return {"id": r.json()["id"], "token": ui.token, "title": title}


def assert_chat_kept(s, chat, token=None) -> None:
    ui = openwebui.OpenWebUI(s.url("OPENWEBUI_PORT"), token=token or chat["token"])
    r = wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(ui.get(f"/api/v1/chats/{chat['id']}")),
                 "the chat is readable", timeout=120)
    body = r.json()
    assert body["title"] == chat["title"]
    assert [m["content"] for m in body["chat"]["messages"]] == ["hello", "hi"]
