"""Loaded-model answers of both generations, chat filtering, and assembling a Discovery."""

import pytest

from stackctl.foundry.discovery import assemble, chat_only, parse_loaded


@pytest.mark.parametrize(
    ("payload", "ids"),
    [
        (["tiny-chat-generic-cpu:1"], ("tiny-chat-generic-cpu:1",)),
        (["Phi-4-mini-instruct-generic-gpu", "Phi-4-mini-instruct-generic-gpu"], ("Phi-4-mini-instruct-generic-gpu",)),
        ([{"id": "a:1"}, {"modelId": "b:2"}, {"name": "c"}, {"x": 1}, 5], ("a:1", "b:2", "c")),
        ({"data": [{"id": "a:1"}]}, ("a:1",)),
        ({"models": ["m"]}, ("m",)),
        ({"value": []}, ()),
        ({"unexpected": 1}, ()),
        ("nope", ()),
        (None, ()),
    ],
)
def test_parse_loaded(payload, ids):
    assert parse_loaded(payload) == ids


def test_chat_only_drops_speech_and_embeddings():
    ids = ("whisper-tiny-generic-cpu:1", "qwen2.5-0.5b-instruct-generic-cpu:4", "nomic-embed-text:1")
    assert chat_only(ids) == ("qwen2.5-0.5b-instruct-generic-cpu:4",)


def test_assemble_local_only_chats_under_catalogs_local():
    d = assemble("embedded", "http://h:1", "sdk", (), ("tiny-chat-generic-cpu:1",))
    assert d.found and d.reason is None
    assert d.openai_base_urls == ("http://h:1/v1", "http://h:1/catalogs/local/v1")
    assert d.chat_base_url == "http://h:1/catalogs/local/v1"
    assert d.chat_models == ("tiny-chat-generic-cpu:1",)


def test_assemble_prefers_public_when_a_chat_model_is_loaded_there():
    d = assemble("cli", "http://h:1", "sdk", ("qwen:4",), ("tiny:1",))
    assert d.chat_base_url == "http://h:1/v1"
    assert d.chat_models == ("qwen:4",)
    assert d.openai_base_urls == ("http://h:1/v1", "http://h:1/catalogs/local/v1")


def test_assemble_nothing_loaded_still_found_with_v1():
    d = assemble("env", "http://h:1", "classic", (), ())
    assert d.found and d.chat_base_url == "http://h:1/v1" and d.chat_models == ()
    assert d.openai_base_urls == ("http://h:1/v1",)
