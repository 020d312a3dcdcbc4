"""Open WebUI's knowledge API (0.12.4) as a folder sync uses it; the only HTTP in the sync.

An upload goes to ``POST /api/v1/files/?process=true&process_in_background=false`` with
``metadata = {knowledge_id, source_path}``: Open WebUI extracts, embeds and links the
file to the collection before it answers, and keeps the upload's sha256 as
``meta.file_hash``. Processing failures do not fail that request — the file is kept with
``data.status == "failed"`` — so the upload is checked afterwards and a failed file is
deleted at once: a failed upload leaves nothing behind. ``sweep`` deletes such files
left by a run that was cut off between the two steps.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from stackctl.errors import StackError
from stackctl.knowledge.plan import Limits, RemoteFile
from stackctl.openwebui import OpenWebUI

PAGE = 100  # files per page (admins may ask for any page size; others get 30)
UPLOAD_TIMEOUT = 600.0  # extraction and embedding happen inside the upload request, on CPU


@dataclass(frozen=True)
class Collection:
    id: str
    name: str
    description: str
    file_count: int


class UploadFailed(Exception):
    """One file could not be added; ``str()`` is Open WebUI's reason."""


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip()[:200] or r.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail or body)[:200]


def _ok(r: httpx.Response, what: str) -> Any:
    if r.status_code >= 400:
        raise StackError(f"Open WebUI refused to {what}: HTTP {r.status_code} {_detail(r)}")
    return r.json()


class KnowledgeAPI:
    def __init__(self, ui: OpenWebUI):
        self.ui = ui

    def retrieval_config(self) -> dict[str, Any]:
        """Open WebUI's stored document settings (GET /api/v1/retrieval/config, admin)."""
        return _ok(self.ui.get("/api/v1/retrieval/config"), "show its document settings")

    def embedding_config(self) -> dict[str, Any]:
        """Which embedding engine and model Open WebUI uses (GET /api/v1/retrieval/embedding, admin)."""
        return _ok(self.ui.get("/api/v1/retrieval/embedding"), "show its embedding settings")

    def reindex(self) -> None:
        """Re-embed every knowledge collection from the text Open WebUI stored, with its
        current embedding model (POST /api/v1/knowledge/reindex, admin; runs to the end)."""
        _ok(self.ui.post("/api/v1/knowledge/reindex", timeout=3600), "re-index its knowledge")

    def limits(self, cfg: dict[str, Any] | None = None) -> Limits:
        cfg = self.retrieval_config() if cfg is None else cfg
        size = cfg.get("FILE_MAX_SIZE")
        return Limits(max_mb=int(size) if size else None,
                      allowed_exts=tuple(e.lower().lstrip(".") for e in cfg.get("ALLOWED_FILE_EXTENSIONS") or ()))

    def collections(self) -> list[Collection]:
        out: list[Collection] = []
        page = 1
        while True:
            body = _ok(self.ui.get("/api/v1/knowledge/", params={"page": page}), "list knowledge collections")
            items = body.get("items") or []
            out += [Collection(k["id"], k["name"], k.get("description") or "", int(k.get("file_count") or 0))
                    for k in items]
            if not items or len(out) >= int(body.get("total") or 0):
                return out
            page += 1

    def create(self, name: str, description: str) -> Collection:
        k = _ok(self.ui.post("/api/v1/knowledge/create", json={"name": name, "description": description}),
                f"create the knowledge collection {name!r}")
        return Collection(k["id"], k["name"], k.get("description") or "", 0)

    def files(self, kid: str) -> list[RemoteFile]:
        out: list[RemoteFile] = []
        page = 1
        while True:
            body = _ok(self.ui.get(f"/api/v1/knowledge/{kid}/files", params={"page": page, "limit": PAGE}),
                       "list the collection's files")
            items = body.get("items") or []
            out += [_remote(f) for f in items]
            if not items or len(out) >= int(body.get("total") or 0):
                return out
            page += 1

    def upload(self, kid: str, path: Path, rel: str) -> str:
        """Add ``path`` to collection ``kid`` as ``rel``; its file id, or UploadFailed with
        nothing left behind."""
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        meta = json.dumps({"knowledge_id": kid, "source_path": rel})
        with path.open("rb") as f:
            r = self.ui.post("/api/v1/files/", params={"process": "true", "process_in_background": "false"},
                             files={"file": (path.name, f, ctype)}, data={"metadata": meta},
                             timeout=UPLOAD_TIMEOUT)
        if r.status_code >= 400:  # refused before a file was kept (type, size, empty content)
            raise UploadFailed(_detail(r))
        fid = r.json()["id"]
        data = (_ok(self.ui.get(f"/api/v1/files/{fid}"), "show an uploaded file").get("data") or {})
        if data.get("status") != "completed":
            self.delete_file(fid)
            raise UploadFailed(str(data.get("error") or f"processing ended {data.get('status')!r}"))
        return fid

    def remove(self, kid: str, fid: str) -> None:
        """Take a file out of the collection and delete it (its embeddings too)."""
        _ok(self.ui.post(f"/api/v1/knowledge/{kid}/file/remove", params={"delete_file": "true"},
                         json={"file_id": fid}), "remove a file from the collection")

    def delete_file(self, fid: str) -> None:
        r = self.ui.delete(f"/api/v1/files/{fid}")
        if r.status_code not in (200, 404):
            _ok(r, "delete a file")

    def sweep(self, kid: str) -> int:
        """Delete the user's files that were meant for ``kid`` but failed to process."""
        failed: list[str] = []
        page = 1
        while True:
            body = _ok(self.ui.get("/api/v1/files/", params={"page": page, "content": "false"}),
                       "list uploaded files")
            items = body.get("items") or []
            failed += [f["id"] for f in items
                       if ((f.get("meta") or {}).get("data") or {}).get("knowledge_id") == kid
                       and (f.get("data") or {}).get("status") == "failed"]
            if not items:
                break
            page += 1
        for fid in failed:  # after listing: deleting while paging would shift the pages
            self.delete_file(fid)
        return len(failed)

def _remote(f: dict[str, Any]) -> RemoteFile:
    meta = f.get("meta") or {}
    source = (meta.get("data") or {}).get("source_path")
    return RemoteFile(id=f["id"], rel=source or meta.get("name") or f.get("filename") or f["id"],
                      sha256=meta.get("file_hash") or f.get("hash"), ours=bool(source))
