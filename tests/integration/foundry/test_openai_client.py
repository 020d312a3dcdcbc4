"""The openai client chats with the discovered base URL and model id, plain and streamed."""

from pathlib import Path

import openai

from stackctl.foundry import discover


def _client_and_model(foundry_server):
    d = discover({}, Path(foundry_server.state_dir), run=lambda *a, **k: None)
    assert d.found, d.reason
    return openai.OpenAI(base_url=d.chat_base_url, api_key="unused", timeout=30), d.chat_models[0]


def test_non_streamed_completion(foundry_server):
    client, model = _client_and_model(foundry_server)
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello"}], max_tokens=8,
    )
    assert answer.model == model
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content
    assert answer.usage.completion_tokens > 0


def test_streamed_completion_with_usage(foundry_server):
    client, model = _client_and_model(foundry_server)
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Count"}], max_tokens=8,
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2  # really streamed
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].completion_tokens > 0


def test_unknown_model_is_a_clean_openai_error(foundry_server):
    client, _ = _client_and_model(foundry_server)
    try:
        client.chat.completions.create(model="nope:1", messages=[{"role": "user", "content": "x"}], max_tokens=2)
    except openai.NotFoundError as err:
        assert err.status_code == 404
    else:
        raise AssertionError("an unknown model id was accepted")
