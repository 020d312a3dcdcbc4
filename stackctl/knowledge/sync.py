"""Running a folder sync: find or create the collection, plan, upload, replace, remove,
and remember when the collection was last synced from where.

Order keeps the collection whole at every moment: a changed file's new version is added
before its old one is removed (a failed re-upload leaves the old version in place), and
removals run last. ``knowledge-sync.json`` in the state dir (0600) records, per
collection id, the folder and the time of the last sync that ran to the end; what changed
is never read from it (Open WebUI's own file hashes decide that).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from stackctl.config import envfile
from stackctl.console import cmd
from stackctl.errors import StackError, UsageError
from stackctl.knowledge import folder as disk
from stackctl.knowledge.api import Collection, KnowledgeAPI, UploadFailed
from stackctl.knowledge.plan import Plan, Skip, plan

STATE_FILE = "knowledge-sync.json"
# openwebui/openwebui.env key → the key of Open WebUI's retrieval config that stores it
RAG_SETTINGS = {"CHUNK_SIZE": "CHUNK_SIZE", "CHUNK_OVERLAP": "CHUNK_OVERLAP", "RAG_TOP_K": "TOP_K",
                "ENABLE_RAG_HYBRID_SEARCH": "ENABLE_RAG_HYBRID_SEARCH", "RAG_FILE_MAX_SIZE": "FILE_MAX_SIZE"}


@dataclass
class SyncResult:
    collection: Collection
    created: bool
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)  # the file types Open WebUI cannot read
    refused: list[Skip] = field(default_factory=list)  # bad input: too big, unreadable (exit 1)
    failed: list[Skip] = field(default_factory=list)  # uploads Open WebUI could not process (exit 1)
    unchanged: int = 0
    foreign: int = 0
    swept: int = 0
    seconds: float = 0.0
    drift: list[str] = field(default_factory=list)  # stored settings other than the stack's
    stale: str | None = None  # the embedding model its earlier syncs used, when not today's

    @property
    def uploads(self) -> int:
        return len(self.added) + len(self.updated)

    @property
    def complete(self) -> bool:
        """The collection mirrors every file of the folder Open WebUI can read."""
        return not (self.refused or self.failed)


def check_folder(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"{path}: no such folder — give an existing folder, "
                         f"e.g. `{cmd('knowledge.sync ~/notes')}`")
    if not path.is_dir():
        raise UsageError(f"{path} is a file, not a folder — give the folder that holds it")


def drift(stored: dict[str, Any], wanted: dict[str, str]) -> list[str]:
    """The retrieval settings Open WebUI has stored that differ from the stack's ``wanted``
    (openwebui.env), each as ``KEY stored (the stack's ENV_KEY=value)``. Pure.

    Open WebUI reads them from the environment on its first start only: an install made
    before the stack set them keeps its own, which is the admin's to change."""
    out = []
    for env_key, cfg_key in RAG_SETTINGS.items():
        if env_key in wanted and cfg_key in stored and str(stored[cfg_key]).lower() != wanted[env_key].lower():
            out.append(f"{cfg_key} {stored[cfg_key]} (the stack's {env_key}={wanted[env_key]})")
    return out


def retrieval_line(embedding: dict[str, Any], cfg: dict[str, Any]) -> str:
    """How Open WebUI retrieves, in one line: embedding model and where it runs, chunking,
    top-k, hybrid search. Pure."""
    engine = embedding.get("RAG_EMBEDDING_ENGINE") or ""
    where = "built in, on Open WebUI's CPU" if not engine else f"through its {engine} connection"
    hybrid = "on" if cfg.get("ENABLE_RAG_HYBRID_SEARCH") else "off"
    rerank = f", reranker {cfg['RAG_RERANKING_MODEL']}" if cfg.get("RAG_RERANKING_MODEL") else ""
    return (f"embeddings: {embedding.get('RAG_EMBEDDING_MODEL') or '?'} ({where}); chunks of "
            f"{cfg.get('CHUNK_SIZE')} characters, top {cfg.get('TOP_K')} per question, hybrid search {hybrid}{rerank}")


def find(api: KnowledgeAPI, name: str) -> Collection | None:
    same = [k for k in api.collections() if k.name == name]
    if len(same) > 1:
        raise UsageError(f"{len(same)} knowledge collections are named {name!r} in Open WebUI — "
                         "rename or delete the extras there, or sync into another one with --name NAME")
    return same[0] if same else None


def lost(err: httpx.HTTPError) -> StackError:
    """Open WebUI stopped answering half-way, as a one-line error with the way on."""
    why = str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__
    return StackError(f"Open WebUI stopped answering ({why}) — check `{cmd('status')}`, then run the "
                      "sync again: it picks up where this one stopped")


def sync(root: Path, api: KnowledgeAPI, **kw: Any) -> SyncResult:
    """Make collection ``name`` (default: the folder's name) mirror ``root``; ``wanted`` are
    the stack's Open WebUI settings, to report stored ones that differ. See ``_sync``."""
    try:
        return _sync(root, api, **kw)
    except httpx.HTTPError as err:
        raise lost(err) from None


def _sync(root: Path, api: KnowledgeAPI, *, name: str | None = None, state_dir: Path,
          say: Callable[[str], None] = lambda _: None, clock: Callable[[], float] = time.monotonic,
          wanted: dict[str, str] | None = None) -> SyncResult:
    start = clock()
    check_folder(root)
    name = (name if name is not None else root.name).strip()
    if not name:
        raise UsageError("the collection name is empty — pass --name NAME")
    cfg = api.retrieval_config()
    limits = api.limits(cfg)
    local, unreadable = disk.scan(root)
    coll = find(api, name)
    created = coll is None
    if coll is None:
        coll = api.create(name, f"Synced from {root} by {cmd('knowledge.sync')}")
        say(f"created knowledge collection {name!r}")
    model = embedding_of(api.embedding_config())
    res = SyncResult(collection=coll, created=created, drift=drift(cfg, wanted or {}),
                     stale=stale_model(synced(state_dir).get(coll.id), model))
    res.swept = 0 if created else api.sweep(coll.id)
    p = plan(local, api.files(coll.id), limits, unreadable)
    res.unchanged, res.foreign = p.unchanged, p.foreign
    for s in p.skip:
        (res.refused if s.refused else res.skipped).append(s)
        say(f"{'refused' if s.refused else 'skipped'} {s.rel}: {s.reason}")

    _apply(p, root, api, res, {f.rel for f in local}, say, clock)
    res.seconds = clock() - start
    # Files embedded by another model stay so until re-indexed: keep the old name then.
    record(state_dir, coll.id, root, embedding=res.stale or model)
    return res


def _apply(p: Plan, root: Path, api: KnowledgeAPI, res: SyncResult, in_folder: set[str],
           say: Callable[[str], None], clock: Callable[[], float]) -> None:
    """Carry out ``p`` in the order that keeps the collection whole, into ``res``."""
    steps = p.uploads + len(p.remove)
    done = 0

    def step(verb: str, rel: str, t0: float) -> None:
        nonlocal done
        done += 1
        say(f"[{done}/{steps}] {verb} {rel} ({clock() - t0:.1f}s)")

    for f in p.add:
        t0 = clock()
        try:
            api.upload(res.collection.id, root / f.rel, f.rel)
        except (UploadFailed, OSError) as e:
            res.failed.append(Skip(f.rel, f"upload failed: {e}", refused=True))
            step("FAILED", f"{f.rel}: {e}", t0)
            continue
        res.added.append(f.rel)
        step("added", f.rel, t0)
    for u in p.update:
        t0 = clock()
        try:
            api.upload(res.collection.id, root / u.new.rel, u.new.rel)
        except (UploadFailed, OSError) as e:
            res.failed.append(Skip(u.new.rel, f"upload failed, the previous version is kept: {e}", refused=True))
            step("FAILED", f"{u.new.rel}: {e}", t0)
            continue
        for old in u.old:
            api.remove(res.collection.id, old.id)
        res.updated.append(u.new.rel)
        step("updated", u.new.rel, t0)
    for r in p.remove:
        t0 = clock()
        api.remove(res.collection.id, r.id)
        res.removed.append(r.rel)
        step("removed an extra copy of" if r.rel in in_folder else "removed", r.rel, t0)


# --- when each collection was last synced --------------------------------------------


def embedding_of(cfg: dict[str, Any]) -> str:
    """The embedding model Open WebUI uses now, as one name (``engine:model``; the engine
    is empty for its built-in SentenceTransformers). Pure."""
    return f"{cfg.get('RAG_EMBEDDING_ENGINE') or ''}:{cfg.get('RAG_EMBEDDING_MODEL') or ''}"


def stale_model(entry: dict[str, str] | None, current: str) -> str | None:
    """The model a collection was embedded with, when it is not ``current`` (its vectors
    then answer another model's queries: retrieval is noise until re-indexed). Pure."""
    old = (entry or {}).get("embedding")
    return old if old and old != current else None


def reindex_hint(name: str, old: str, current: str) -> str:
    return (f"{name!r} was embedded with {old.lstrip(':')}, Open WebUI now embeds with "
            f"{current.lstrip(':')}: its search finds noise until re-indexed — run "
            f"`{cmd('knowledge.reindex')}`")


def mark_reindexed(state_dir: Path, current: str) -> int:
    """After Open WebUI re-embedded every collection: record ``current`` for each."""
    data = synced(state_dir)
    for entry in data.values():
        entry["embedding"] = current
    if data:
        envfile.write_atomic(state_dir / STATE_FILE, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return len(data)


def synced(state_dir: Path) -> dict[str, dict[str, str]]:
    """Collection id → {"folder", "synced_at" (ISO 8601, UTC), "embedding"}; {} when never
    synced here."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(state_dir: Path, kid: str, root: Path, now: datetime | None = None,
           embedding: str | None = None) -> None:
    data = synced(state_dir)
    data[kid] = {"folder": str(root), "synced_at": (now or datetime.now(UTC)).isoformat(timespec="seconds")}
    if embedding:
        data[kid]["embedding"] = embedding
    envfile.write_atomic(state_dir / STATE_FILE, json.dumps(data, indent=1, sort_keys=True) + "\n")
