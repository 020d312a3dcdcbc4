"""smoke's retrieval check: pure parts, and the check against Open WebUI's answers (faked)."""

from __future__ import annotations

import json

import httpx

from stackctl.checks import knowledge, runner
from stackctl.checks.runner import FAIL, OK, SKIP


def test_the_question_is_the_first_line_of_five_words_or_more():
    assert knowledge.probe_question("# Title\n\n- short line\n## Magma rises through the crust\nmore") == \
        "Magma rises through the crust"
    assert knowledge.probe_question("a b c\n\nd e") is None
    assert len(knowledge.probe_question("word " * 100)) == knowledge.MAX_QUESTION


def test_the_rank_is_where_the_file_appears_among_the_cited_chunks():
    sources = [{"source": {"type": "collection", "id": "k"}, "metadata": [
        {"file_id": "f2", "source_path": "b.md"}, {"file_id": "f1", "source_path": "a.md"},
        {"file_id": "f1", "name": "a.md"}]}]
    assert knowledge.cited(sources, "f1") == (2, ["b.md", "a.md", "a.md"])
    assert knowledge.cited(sources, "f9") == (None, ["b.md", "a.md", "a.md"])
    assert knowledge.cited([], "f1") == (None, [])


def _with_collection(fake, cite: str | None):
    fake.routes[("3000", "/api/v1/knowledge/")] = lambda r: httpx.Response(200, json={"items": [
        {"id": "k-empty", "name": "A-empty", "file_count": 0}, {"id": "k1", "name": "notes", "file_count": 1}],
        "total": 2})
    fake.routes[("3000", "/api/v1/knowledge/k1/files")] = lambda r: httpx.Response(200, json={"items": [
        {"id": "f1", "meta": {"name": "a.md", "file_hash": "h", "data": {"source_path": "sub/a.md"}}}], "total": 1})
    fake.routes[("3000", "/api/v1/files/f1/data/content")] = lambda r: httpx.Response(
        200, json={"content": "# A\nMagma rises through cracks in the crust.\n"})
    asked = []

    def chat(r: httpx.Request) -> httpx.Response:
        body = json.loads(r.content)
        asked.append(body)
        metadata = [{"file_id": cite, "source_path": "sub/a.md"}] if cite else []
        return httpx.Response(200, json={"choices": [{"message": {"content": "hi"}}],
                                         "sources": [{"source": {"type": "collection", "id": "k1"},
                                                      "metadata": metadata}]})
    fake.routes[("3000", "/api/chat/completions")] = chat
    return asked


def _run(make_ctx):
    from stackctl.checks import chat

    res = {r.name: r for r in runner.run_checks([*chat.CHECKS, *knowledge.CHECKS], make_ctx()).results}
    return res["knowledge"]


def test_a_chat_naming_the_collection_must_cite_the_file_the_question_came_from(make_ctx, fake):
    asked = _with_collection(fake, cite="f1")
    r = _run(make_ctx)
    assert (r.status, r.detail) == (OK, "'notes': a question from sub/a.md cited it (#1 of 1 sources)")
    assert asked[-1]["files"] == [{"type": "collection", "id": "k1"}]
    assert asked[-1]["messages"][0]["content"] == "Magma rises through cracks in the crust."


def test_sources_without_the_file_fail_naming_what_was_cited_and_the_fix(make_ctx, fake):
    _with_collection(fake, cite=None)
    r = _run(make_ctx)
    assert r.status == FAIL
    assert r.detail == "a question taken from sub/a.md in 'notes' came back citing nothing"
    assert "knowledge.sync FOLDER" in r.fix


def test_no_collection_is_a_skip_that_says_how_to_add_one(make_ctx, fake):
    r = _run(make_ctx)
    assert r.status == SKIP and r.detail.startswith("skipped: no knowledge collection with files — add a folder")
