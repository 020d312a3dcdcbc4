"""Changing the embedding model: collections embedded with another one are named, with the
command that re-embeds them, and re-indexing records the new model."""

from __future__ import annotations

import json
from pathlib import Path

from stackctl.knowledge.sync import (
    STATE_FILE,
    embedding_of,
    mark_reindexed,
    record,
    reindex_hint,
    stale_model,
    synced,
)

MINILM = {"RAG_EMBEDDING_ENGINE": "", "RAG_EMBEDDING_MODEL": "sentence-transformers/all-MiniLM-L6-v2"}
FOUNDRY = {"RAG_EMBEDDING_ENGINE": "openai", "RAG_EMBEDDING_MODEL": "qwen3-embedding-0.6b"}


def test_the_model_name_includes_its_engine() -> None:
    assert embedding_of(MINILM) == ":sentence-transformers/all-MiniLM-L6-v2"
    assert embedding_of(FOUNDRY) == "openai:qwen3-embedding-0.6b"
    assert embedding_of({}) == ":"


def test_a_collection_is_stale_only_when_it_names_another_model() -> None:
    now = embedding_of(MINILM)
    assert stale_model({"embedding": now}, now) is None
    assert stale_model({"embedding": embedding_of(FOUNDRY)}, now) == "openai:qwen3-embedding-0.6b"
    assert stale_model({}, now) is None  # synced before the model was recorded: unknown, not stale
    assert stale_model(None, now) is None


def test_the_hint_names_both_models_and_the_command() -> None:
    hint = reindex_hint("handbook", embedding_of(FOUNDRY), embedding_of(MINILM))
    assert "'handbook' was embedded with openai:qwen3-embedding-0.6b" in hint
    assert "now embeds with sentence-transformers/all-MiniLM-L6-v2" in hint
    assert "`./stack knowledge.reindex`" in hint


def test_record_keeps_the_model_and_reindex_moves_every_collection_to_the_new_one(tmp_path: Path) -> None:
    record(tmp_path, "k1", tmp_path / "a", embedding=embedding_of(FOUNDRY))
    record(tmp_path, "k2", tmp_path / "b", embedding=embedding_of(MINILM))
    assert synced(tmp_path)["k1"]["embedding"] == "openai:qwen3-embedding-0.6b"
    assert mark_reindexed(tmp_path, embedding_of(MINILM)) == 2
    data = json.loads((tmp_path / STATE_FILE).read_text())
    assert {v["embedding"] for v in data.values()} == {embedding_of(MINILM)}
    assert (tmp_path / STATE_FILE).stat().st_mode & 0o777 == 0o600


def test_reindex_without_any_sync_writes_nothing(tmp_path: Path) -> None:
    assert mark_reindexed(tmp_path, embedding_of(MINILM)) == 0
    assert not (tmp_path / STATE_FILE).exists()
