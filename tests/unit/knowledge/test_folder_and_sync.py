"""Reading a folder (real files on disk) and running a plan in the order that keeps the
collection whole (against an in-memory collection: the real one is in tests/e2e/knowledge)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from stackctl.errors import StackError, UsageError
from stackctl.knowledge import folder, sync
from stackctl.knowledge.api import Collection, UploadFailed
from stackctl.knowledge.plan import Limits, RemoteFile


def test_scan_reads_every_file_below_the_folder_but_hidden_ones(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "a.md").write_text("alpha")
    (tmp_path / "sub" / "deeper" / "b.txt").write_bytes(b"b" * 9000)
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    files, unreadable = folder.scan(tmp_path)
    assert unreadable == []
    assert [(f.rel, f.size) for f in files] == [("a.md", 5), ("sub/deeper/b.txt", 9000)]
    assert files[1].sha256 == hashlib.sha256(b"b" * 9000).hexdigest()
    assert files[1].head == b"b" * 8192


def _refusals_as_nobody(root: Path) -> list[tuple[str, str, bool]]:
    """scan(root)'s refusals from a forked child that, when the tests run as root (CI),
    drops to nobody first: for root, mode 000 hides nothing."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no exec, so the interpreter's own permissions do not matter
        code = 1
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            os.write(w, json.dumps([(s.rel, s.reason, s.refused) for s in folder.scan(root)[1]]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    assert os.waitpid(pid, 0)[1] == 0
    return [tuple(x) for x in json.loads(out)]


def test_a_file_and_a_folder_that_cannot_be_read_are_refused_with_the_fix():
    root = Path(tempfile.mkdtemp(prefix="knowledge-perm-", dir="/tmp"))
    try:
        root.chmod(0o755)
        (root / "ok.md").write_text("fine")
        (root / "locked.md").write_text("secret")
        (root / "locked.md").chmod(0)
        (root / "private").mkdir(mode=0)
        why = "cannot be read (permission denied) — fix its permissions, or move it out of the folder"
        assert sorted(_refusals_as_nobody(root)) == [("locked.md", why, True), ("private/", why, True)]
    finally:
        (root / "private").chmod(stat.S_IRWXU)
        subprocess.run(["rm", "-rf", str(root)], check=True)


class FakeCollection:
    """Open WebUI's side of a sync, in memory: enough to see the order of the calls."""

    def __init__(self, files: dict[str, bytes] | None = None, fail: set[str] = frozenset()):
        self.held = {f"old-{rel}": (rel, hashlib.sha256(b).hexdigest()) for rel, b in (files or {}).items()}
        self.fail, self.calls, self.n = fail, [], 0
        self.colls = [Collection("k1", "notes", "", len(self.held))] if files is not None else []

    def retrieval_config(self):
        return {"FILE_MAX_SIZE": 1, "CHUNK_SIZE": 1000, "TOP_K": 4, "ENABLE_RAG_HYBRID_SEARCH": False}

    def embedding_config(self):
        return {"RAG_EMBEDDING_ENGINE": "", "RAG_EMBEDDING_MODEL": "all-MiniLM-L6-v2"}

    def limits(self, cfg):
        return Limits(max_mb=cfg["FILE_MAX_SIZE"])

    def collections(self):
        return self.colls

    def create(self, name, description):
        self.calls.append(("create", name))
        self.colls.append(Collection("k1", name, description, 0))
        return self.colls[-1]

    def sweep(self, kid):
        return 0

    def files(self, kid):
        return [RemoteFile(fid, rel, h, True) for fid, (rel, h) in self.held.items()]

    def upload(self, kid, path, rel):
        self.calls.append(("upload", rel))
        if rel in self.fail:
            raise UploadFailed("Stream has ended unexpectedly")
        self.n += 1
        self.held[f"new{self.n}"] = (rel, hashlib.sha256(path.read_bytes()).hexdigest())
        return f"new{self.n}"

    def remove(self, kid, fid):
        self.calls.append(("remove", self.held.pop(fid)[0]))


def _folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "notes"
    for rel, b in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b)
    return root


def test_a_first_sync_creates_the_collection_named_after_the_folder_and_records_when(tmp_path):
    api = FakeCollection()
    lines = []
    ticks = iter(range(100))
    res = sync.sync(_folder(tmp_path, {"a.md": b"A", "b.md": b"B"}), api, state_dir=tmp_path / "state",
                    say=lines.append, clock=lambda: float(next(ticks)))
    assert api.calls == [("create", "notes"), ("upload", "a.md"), ("upload", "b.md")]
    assert (res.created, res.added, res.complete) == (True, ["a.md", "b.md"], True)
    assert lines == ["created knowledge collection 'notes'", "[1/2] added a.md (1.0s)", "[2/2] added b.md (1.0s)"]
    state = sync.synced(tmp_path / "state")
    assert state["k1"]["folder"] == str(tmp_path / "notes")
    assert stat.S_IMODE((tmp_path / "state" / sync.STATE_FILE).stat().st_mode) == 0o600


def test_a_changed_file_goes_in_before_its_old_version_goes_out(tmp_path):
    api = FakeCollection({"a.md": b"A1", "gone.md": b"G"})
    res = sync.sync(_folder(tmp_path, {"a.md": b"A2"}), api, state_dir=tmp_path)
    assert api.calls == [("upload", "a.md"), ("remove", "a.md"), ("remove", "gone.md")]
    assert (res.updated, res.removed, res.created) == (["a.md"], ["gone.md"], False)


def test_a_failed_reupload_keeps_the_previous_version_and_fails_the_run(tmp_path):
    api = FakeCollection({"a.md": b"A1"}, fail={"a.md", "new.pdf"})
    res = sync.sync(_folder(tmp_path, {"a.md": b"A2", "new.pdf": b"%PDF"}), api, state_dir=tmp_path)
    assert [rel for rel, _ in api.held.values()] == ["a.md"]  # the old version
    assert not res.complete and res.updated == [] and res.added == []
    assert [s.reason for s in res.failed] == ["upload failed: Stream has ended unexpectedly",
                                              "upload failed, the previous version is kept: Stream has ended "
                                              "unexpectedly"]


def test_an_unchanged_folder_makes_no_call_that_changes_anything(tmp_path):
    api = FakeCollection({"a.md": b"A"})
    res = sync.sync(_folder(tmp_path, {"a.md": b"A", "big.bin": b"\0" * (1024 * 1024 + 1)}), api, state_dir=tmp_path)
    assert api.calls == []
    assert (res.unchanged, [s.rel for s in res.refused]) == (1, ["big.bin"])


def test_a_missing_folder_or_a_file_is_refused_before_anything_is_asked(tmp_path):
    api = FakeCollection()
    with pytest.raises(UsageError, match=r"^.*/nope: no such folder — give an existing folder, e\.g\. `.*"
                                         r"knowledge\.sync ~/notes`$"):
        sync.sync(tmp_path / "nope", api, state_dir=tmp_path)
    (tmp_path / "f.md").write_text("x")
    with pytest.raises(UsageError, match=r"f\.md is a file, not a folder — give the folder that holds it$"):
        sync.sync(tmp_path / "f.md", api, state_dir=tmp_path)
    assert api.calls == []


def test_two_collections_with_the_name_are_refused_naming_the_way_out(tmp_path):
    api = FakeCollection()
    api.colls = [Collection("1", "notes", "", 0), Collection("2", "notes", "", 3)]
    with pytest.raises(UsageError, match=r"2 knowledge collections are named 'notes' in Open WebUI — .* --name NAME"):
        sync.sync(_folder(tmp_path, {"a.md": b"A"}), api, state_dir=tmp_path)


def test_the_sync_record_keeps_other_collections_and_survives_a_broken_file(tmp_path):
    (tmp_path / sync.STATE_FILE).write_text("{not json")
    assert sync.synced(tmp_path) == {}
    when = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    sync.record(tmp_path, "k1", Path("/a"), when)
    sync.record(tmp_path, "k2", Path("/b"), when)
    assert json.loads((tmp_path / sync.STATE_FILE).read_text()) == {
        "k1": {"folder": "/a", "synced_at": "2026-12-01T12:00:00+00:00"},
        "k2": {"folder": "/b", "synced_at": "2026-12-01T12:00:00+00:00"}}


def test_stored_settings_other_than_the_stacks_are_reported_with_both_values():
    stored = {"CHUNK_SIZE": 1000, "CHUNK_OVERLAP": 100, "TOP_K": 4, "ENABLE_RAG_HYBRID_SEARCH": False,
              "FILE_MAX_SIZE": None, "TEMPLATE": "…"}
    wanted = {"CHUNK_SIZE": "800", "CHUNK_OVERLAP": "100", "RAG_TOP_K": "4", "ENABLE_RAG_HYBRID_SEARCH": "false",
              "RAG_FILE_MAX_SIZE": "20", "OFFLINE_MODE": "true"}
    assert sync.drift(stored, wanted) == ["CHUNK_SIZE 1000 (the stack's CHUNK_SIZE=800)",
                                          "FILE_MAX_SIZE None (the stack's RAG_FILE_MAX_SIZE=20)"]
    assert sync.drift(stored, {}) == []


def test_a_sync_reports_the_drift_it_sees(tmp_path):
    res = sync.sync(_folder(tmp_path, {"a.md": b"A"}), FakeCollection(), state_dir=tmp_path,
                    wanted={"CHUNK_SIZE": "800", "RAG_TOP_K": "4"})
    assert res.drift == ["CHUNK_SIZE 1000 (the stack's CHUNK_SIZE=800)"]


def test_the_stacks_own_settings_name_every_setting_the_drift_compares():
    from stackctl.config import envfile
    from stackctl.config.stack import ROOT

    settings = envfile.values(envfile.parse((ROOT / "openwebui" / "openwebui.env").read_text()))
    assert set(sync.RAG_SETTINGS) <= set(settings)


def test_open_webui_going_away_half_way_is_one_line_saying_a_rerun_continues(tmp_path):
    api = FakeCollection({"a.md": b"A"})

    def gone(kid, path, rel):
        raise httpx.ReadTimeout("timed out")
    api.upload = gone
    with pytest.raises(StackError, match=r"^Open WebUI stopped answering \(timed out\) — check `.*stack status`, "
                                         r"then run the sync again: it picks up where this one stopped$"):
        sync.sync(_folder(tmp_path, {"a.md": b"A2"}), api, state_dir=tmp_path)
    assert sync.synced(tmp_path) == {}  # not recorded as synced


def test_the_retrieval_line_says_which_model_embeds_where_and_how_much_is_retrieved():
    cfg = {"CHUNK_SIZE": 800, "TOP_K": 4, "ENABLE_RAG_HYBRID_SEARCH": False, "RAG_RERANKING_MODEL": ""}
    built_in = {"RAG_EMBEDDING_ENGINE": "", "RAG_EMBEDDING_MODEL": "sentence-transformers/all-MiniLM-L6-v2"}
    assert sync.retrieval_line(built_in, cfg) == (
        "embeddings: sentence-transformers/all-MiniLM-L6-v2 (built in, on Open WebUI's CPU); "
        "chunks of 800 characters, top 4 per question, hybrid search off")
    remote = {"RAG_EMBEDDING_ENGINE": "openai", "RAG_EMBEDDING_MODEL": "qwen3-embedding"}
    assert sync.retrieval_line(remote, {**cfg, "ENABLE_RAG_HYBRID_SEARCH": True, "RAG_RERANKING_MODEL": "bge"}) == (
        "embeddings: qwen3-embedding (through its openai connection); "
        "chunks of 800 characters, top 4 per question, hybrid search on, reranker bge")


def test_a_sync_after_the_embedding_model_changed_says_to_reindex_and_keeps_the_old_name(tmp_path):
    """Files synced now get the new model's vectors, the rest keep the old ones: the
    collection stays "embedded with the old model" until `knowledge.reindex`."""
    root = tmp_path / "notes"
    root.mkdir()
    (root / "a.md").write_text("alpha")
    api = FakeCollection({"a.md": b"alpha"})
    state = tmp_path / "state"
    state.mkdir()
    sync.record(state, "k1", root, embedding=":old-model")
    res = sync.sync(root, api, state_dir=state)
    assert res.stale == ":old-model"
    assert sync.synced(state)["k1"]["embedding"] == ":old-model"
    sync.mark_reindexed(state, ":all-MiniLM-L6-v2")
    assert sync.sync(root, api, state_dir=state).stale is None
