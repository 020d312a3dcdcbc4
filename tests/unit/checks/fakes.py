"""Fakes for the smoke checks: one httpx.MockTransport playing Foundry Local,
Open WebUI, the exporter and Prometheus, each answer editable per test."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx

from stackctl.foundry.view import FoundryView

MODEL = "tiny-chat-generic-cpu:1"
FOUNDRY = "http://127.0.0.1:52180"
CONTAINER_OPENAI = "http://host.docker.internal:9180/v1"  # the gateway
PORTS = {"OPENWEBUI_PORT": "3000", "PROMETHEUS_PORT": "9090", "EXPORTER_PORT": "9101", "GRAFANA_PORT": "3001",
         "ALERTMANAGER_PORT": "9093"}
ALERTMANAGERS = {"status": "success", "data": {
    "activeAlertmanagers": [{"url": "http://alertmanager:9093/api/v2/alerts"}], "droppedAlertmanagers": []}}


def view(models: tuple[str, ...] = (MODEL,)) -> FoundryView:
    return FoundryView(source="embedded", generation="sdk", root_url=FOUNDRY,
                       openai_url=FOUNDRY + "/catalogs/local/v1", chat_models=models,
                       upstream_url=FOUNDRY + "/catalogs/local",
                       container_base_url="http://host.docker.internal:9180",
                       container_openai_url=CONTAINER_OPENAI)


def completion(content: str = "hello there") -> dict:
    return {"id": "c1", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}]}


def sse(*contents: str, finish: str | None = "stop", done: bool = True) -> bytes:
    chunks = [{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
               "choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]} for c in contents]
    if finish:
        chunks.append({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + ("data: [DONE]\n\n" if done else "")
    return body.encode()


def metrics(up: float = 1, canary_age: float = 5, canary_ok: float = 1, now: float | None = None) -> str:
    now = time.time() if now is None else now
    return "\n".join([
        "# TYPE foundry_up gauge",
        f'foundry_up{{target="foundry",kind="foundry"}} {up}',
        'foundry_up{target="open-webui",kind="openwebui"} 1',
        "# TYPE foundry_probe_success gauge",
        f'foundry_probe_success{{target="foundry",probe="chat"}} {canary_ok}',
        "# TYPE foundry_probe_last_timestamp_seconds gauge",
        f'foundry_probe_last_timestamp_seconds{{target="foundry",probe="chat"}} {now - canary_age}',
        f'foundry_probe_last_timestamp_seconds{{target="foundry",probe="models"}} {now - 1}',
        "",
    ])


def targets(*health: tuple[str, str]) -> dict:
    return {"status": "success", "data": {"activeTargets": [
        {"labels": {"job": job}, "scrapeUrl": f"http://{job}:1/metrics", "health": h,
         "lastError": "" if h == "up" else "connection refused"} for job, h in health]}}


RULES = {"status": "success", "data": {"groups": [{"name": "g", "rules": [
    {"name": "target_kind:foundry_up:avg_over_time5m", "type": "recording", "health": "ok"},
    {"name": "FoundryLocalDown", "type": "alerting", "health": "ok"}]}]}}


class FakeStack:
    """Answers by (host port, path); tests replace entries in ``routes``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.signins = 0
        self.stored_url = CONTAINER_OPENAI
        self.routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {
            ("52180", "/catalogs/local/v1/chat/completions"): lambda r: httpx.Response(200, json=completion()),
            ("3000", "/health"): lambda r: httpx.Response(200, json={"status": True}),
            ("3000", "/ready"): lambda r: httpx.Response(200, json={"status": True}),
            ("3000", "/api/v1/auths/signin"): self._signin,
            ("3000", "/api/v1/auths/"): self._auths,
            ("3000", "/openai/config"): lambda r: httpx.Response(200, json={
                "ENABLE_OPENAI_API": True, "OPENAI_API_BASE_URLS": [self.stored_url],
                "OPENAI_API_KEYS": [""], "OPENAI_API_CONFIGS": {"0": {"enable": True, "model_ids": [MODEL]}}}),
            ("3000", "/openai/verify"): self._verify,
            ("3000", "/api/models"): lambda r: httpx.Response(200, json={"data": [{"id": MODEL}]}),
            ("3000", "/api/chat/completions"): self._chat,
            ("3000", "/api/v1/knowledge/"): lambda r: httpx.Response(200, json={"items": [], "total": 0}),
            ("9101", "/metrics"): lambda r: httpx.Response(200, text=metrics()),
            ("9090", "/api/v1/targets"): lambda r: httpx.Response(200, json=targets(
                ("prometheus", "up"), ("foundry-exporter", "up"))),
            ("9090", "/api/v1/rules"): lambda r: httpx.Response(200, json=RULES),
            ("9090", "/api/v1/query"): lambda r: httpx.Response(200, json={"status": "success", "data": {
                "resultType": "vector", "result": [{"metric": {"__name__": "target_kind:foundry_up:avg_over_time5m"},
                                                    "value": [1, "1"]}]}}),
            ("9090", "/api/v1/alertmanagers"): lambda r: httpx.Response(200, json=ALERTMANAGERS),
            ("9093", "/-/healthy"): lambda r: httpx.Response(200, text="OK"),
        }

    def _signin(self, r: httpx.Request) -> httpx.Response:
        self.signins += 1
        return httpx.Response(200, json={"token": f"jwt-{self.signins}"})

    def _auths(self, r: httpx.Request) -> httpx.Response:
        ok = r.headers.get("authorization", "").startswith("Bearer jwt-")
        return httpx.Response(200 if ok else 401, json={})

    def _verify(self, r: httpx.Request) -> httpx.Response:
        body = json.loads(r.content)
        if body["url"] == CONTAINER_OPENAI:
            return httpx.Response(200, json={"data": [{"id": MODEL}]})
        return httpx.Response(500, json={"detail": "Open WebUI: Server Connection Error"})

    def _chat(self, r: httpx.Request) -> httpx.Response:
        if json.loads(r.content).get("stream"):
            return httpx.Response(200, content=sse("hel", "lo"), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=completion())

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = (str(request.url.port), request.url.path)
        self.calls.append(key)
        handler = self.routes.get(key)
        if handler is None:
            raise httpx.ConnectError("connection refused", request=request)
        return handler(request)
