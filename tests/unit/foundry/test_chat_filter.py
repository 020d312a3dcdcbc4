"""Which models can chat is decided once (the exporter's filter): `up`, smoke and the
canary never pick differently. Before, discovery kept rerankers and TTS models that
the exporter dropped, and the exporter kept `-asr` models that discovery dropped."""

from __future__ import annotations

from foundry_exporter.probes.listing import chat_candidates
from stackctl.foundry.discovery import chat_only

IDS = ("phi-4-mini-generic-cpu:1", "whisper-tiny-generic-cpu:1", "qwen3-embedding-0.6b:1",
       "bge-reranker-base:1", "kokoro-tts:1", "parakeet-asr:1", "qwen2.5-0.5b-instruct-generic-cpu:4")


def test_discovery_and_the_exporter_agree_on_every_family():
    assert chat_only(IDS) == chat_candidates(IDS) == (
        "phi-4-mini-generic-cpu:1", "qwen2.5-0.5b-instruct-generic-cpu:4")
