"""The session fixture serves the tiny model: chat works at the base URL it reports."""

import httpx


def test_foundry_server_fixture_serves_tiny_model(foundry_server):
    r = httpx.post(
        foundry_server.chat_base_url + "/chat/completions",
        json={"model": foundry_server.model_id, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == foundry_server.model_id
    assert foundry_server.model_id == "tiny-chat-generic-cpu:1"
    assert foundry_server.chat_base_url.endswith("/catalogs/local/v1")
