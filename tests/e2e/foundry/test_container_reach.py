"""From a container on the default bridge, the embedded server (loopback only) is out of
reach; the gateway, listening on the bridge address with a key, is the way in — the
Linux Docker Engine case: host.docker.internal resolves to the bridge gateway.

The real gateway program runs as a host process here; the stack runs it in a
host-networking container (tests/e2e/stack/test_stack.py covers that path).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid

import httpx
import pytest

from stackctl.foundry import bridge, container_url
from tests.plugins.common import free_port, wait_for


def run_in_container(image: str, *cmd: str) -> subprocess.CompletedProcess:
    name = f"fl-foundry-test-{uuid.uuid4().hex[:8]}"
    try:
        return subprocess.run(
            ["docker", "run", "--rm", "--name", name, "--add-host", "host.docker.internal:host-gateway", image, *cmd],
            capture_output=True, text=True, timeout=120, check=False,
        )
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_the_embedded_server_listens_on_loopback_only(foundry_server):
    assert all(u.startswith("http://127.0.0.1:") for u in foundry_server.urls), foundry_server.urls


@pytest.fixture
def gateway(foundry_server, tmp_path):
    ip = bridge.gateway_ip()
    assert ip, "no Docker bridge address (is the engine running?)"
    port, key = free_port(), secrets.token_urlsafe(32)
    config = tmp_path / "gateway.yml"
    config.write_text("upstreams: [{name: foundry}]\n")
    env = dict(os.environ, GATEWAY_API_KEY=key,
               GATEWAY_UPSTREAM_URL=foundry_server.chat_base_url.removesuffix("/v1"))
    proc = subprocess.Popen([sys.executable, "-m", "foundry_gateway", "--config", str(config),
                             "--listen-address", f"127.0.0.1:{port},{ip}:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200,
                 "gateway /healthz", timeout=20, interval=0.1)
        yield f"http://host.docker.internal:{port}", key
    finally:
        proc.terminate()
        proc.wait(15)


def test_a_container_reaches_foundry_only_through_the_gateway_with_its_key(foundry_server, base_image, gateway):
    door, key = gateway
    direct = run_in_container(base_image, "curl", "-sS", "--fail", "--max-time", "10",
                              container_url(foundry_server.chat_base_url) + "/models")
    assert direct.returncode != 0, "a container reached the loopback-only Foundry directly"

    no_key = run_in_container(base_image, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}\n",
                              "--max-time", "20", door + "/v1/models")
    assert no_key.stdout.strip() == "401", no_key.stdout + no_key.stderr

    auth = ["-H", f"Authorization: Bearer {key}"]
    listed = run_in_container(base_image, "curl", "-sS", "--fail", "--max-time", "20", *auth, door + "/v1/models")
    assert listed.returncode == 0, listed.stderr
    assert [m["id"] for m in json.loads(listed.stdout)["data"]] == [foundry_server.model_id]

    body = json.dumps({"model": foundry_server.model_id, "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 4})
    chat = run_in_container(base_image, "curl", "-sS", "--fail", "--max-time", "30", *auth,
                            "-H", "content-type: application/json", "-d", body, door + "/v1/chat/completions")
    assert chat.returncode == 0, chat.stderr
    answer = json.loads(chat.stdout)
    assert answer["model"] == foundry_server.model_id and answer["choices"][0]["message"]["content"]
