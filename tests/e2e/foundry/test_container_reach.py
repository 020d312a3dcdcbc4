"""A container on the default bridge reaches the embedded server via host.docker.internal.

This is the Linux Docker Engine case the gateway bind exists for: host-gateway
resolves to the bridge gateway, where a loopback-only server would be invisible.
"""

from __future__ import annotations

import json
import subprocess
import uuid

from stackctl.foundry import container_url


def run_in_container(image: str, *cmd: str) -> subprocess.CompletedProcess:
    name = f"fl-foundry-test-{uuid.uuid4().hex[:8]}"
    try:
        return subprocess.run(
            ["docker", "run", "--rm", "--name", name, "--add-host", "host.docker.internal:host-gateway", image, *cmd],
            capture_output=True, text=True, timeout=120, check=False,
        )
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_server_is_bound_to_the_bridge_gateway(foundry_server):
    gateway_urls = [u for u in foundry_server.urls if not u.startswith("http://127.0.0.1")]
    assert gateway_urls, f"not bound beyond loopback: {foundry_server.urls}"


def test_container_lists_models_and_chats_through_host_docker_internal(foundry_server, base_image):
    base = container_url(foundry_server.chat_base_url)
    assert base.startswith("http://host.docker.internal:")
    listed = run_in_container(base_image, "curl", "-sS", "--fail", "--max-time", "20", base + "/models")
    assert listed.returncode == 0, listed.stderr
    assert foundry_server.model_id in [m["id"] for m in json.loads(listed.stdout)["data"]]

    root_models = run_in_container(
        base_image, "curl", "-sS", "--fail", "--max-time", "20", container_url(foundry_server.root_url) + "/v1/models"
    )
    assert root_models.returncode == 0, root_models.stderr
    assert json.loads(root_models.stdout)["object"] == "list"

    body = json.dumps({"model": foundry_server.model_id, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    chat = run_in_container(
        base_image, "curl", "-sS", "--fail", "--max-time", "30", "-H", "content-type: application/json",
        "-d", body, base + "/chat/completions",
    )
    assert chat.returncode == 0, chat.stderr
    answer = json.loads(chat.stdout)
    assert answer["model"] == foundry_server.model_id and answer["choices"][0]["message"]["content"]
