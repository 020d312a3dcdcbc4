"""The smoke check of knowledge (retrieval): when Open WebUI holds a knowledge collection
with files, a chat that names the collection must come back with sources that include
the file a question was taken from — embeddings, the vector store, retrieval and the
chat all in one pass. With no collection there is nothing to check (skipped, saying how
to add one).

The question is a line of the file's own extracted text (Open WebUI's copy, so it is
what was embedded); the collection and file are the first by name, so runs repeat."""

from __future__ import annotations

from typing import Any

from stackctl.checks.context import CHAT_TIMEOUT, Ctx, need_model
from stackctl.checks.runner import Check, Failed, Skipped
from stackctl.console import cmd
from stackctl.knowledge.api import KnowledgeAPI

MIN_WORDS = 5
MAX_QUESTION = 200
FIX = (f"`{cmd('logs open-webui')}` (embedding or retrieval errors); re-index the folder with "
       f"`{cmd('knowledge.sync FOLDER')}` after deleting the collection in Open WebUI")


def probe_question(text: str) -> str | None:
    """The first line of ``text`` with at least MIN_WORDS words, clipped; None if none. Pure."""
    for line in text.splitlines():
        words = line.strip(" #*->\t").split()
        if len(words) >= MIN_WORDS:
            return " ".join(words)[:MAX_QUESTION]
    return None


def cited(sources: list[dict[str, Any]], file_id: str) -> tuple[int | None, list[str]]:
    """(1-based rank of ``file_id`` among the cited chunks or None, the cited names in order). Pure.

    Open WebUI 0.12.4 answers a chat that names a collection with one source per
    collection: ``metadata`` lists its retrieved chunks, best first."""
    names: list[str] = []
    rank = None
    for src in sources:
        for m in src.get("metadata") or []:
            names.append(str(m.get("source_path") or m.get("name") or m.get("source") or "?"))
            if rank is None and m.get("file_id") == file_id:
                rank = len(names)
    return rank, names


def check_retrieval(ctx: Ctx) -> str:
    assert ctx.ui is not None and ctx.model
    api = KnowledgeAPI(ctx.ui)
    colls = sorted((k for k in api.collections() if k.file_count), key=lambda k: k.name.lower())
    if not colls:
        raise Skipped(f"no knowledge collection with files — add a folder with `{cmd('knowledge.sync FOLDER')}`")
    coll = colls[0]
    target = question = None
    for f in sorted(api.files(coll.id), key=lambda f: f.rel)[:5]:
        r = ctx.ui.get(f"/api/v1/files/{f.id}/data/content")
        question = probe_question((r.json() or {}).get("content") or "") if r.status_code == 200 else None
        if question:
            target = f
            break
    if target is None or question is None:
        raise Skipped(f"no line of {MIN_WORDS}+ words in the first files of {coll.name!r} to ask about")
    r = ctx.ui.post("/api/chat/completions", timeout=CHAT_TIMEOUT, json={
        "model": ctx.model, "stream": False, "max_tokens": 16,
        "messages": [{"role": "user", "content": question}], "files": [{"type": "collection", "id": coll.id}]})
    if r.status_code != 200:
        raise Failed(f"a chat naming {coll.name!r} failed: HTTP {r.status_code} {r.text[:200]}", FIX)
    rank, names = cited(r.json().get("sources") or [], target.id)
    if rank is None:
        raise Failed(f"a question taken from {target.rel} in {coll.name!r} came back citing "
                     f"{', '.join(names) or 'nothing'}", FIX)
    return f"{coll.name!r}: a question from {target.rel} cited it (#{rank} of {len(names)} sources)"


CHECKS: tuple[Check, ...] = (Check("knowledge", check_retrieval, need_model),)
