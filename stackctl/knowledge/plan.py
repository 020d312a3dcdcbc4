"""What a folder sync must do, decided from data alone: which files Open WebUI can read,
and the diff between the folder and the collection as a plan. Pure: no HTTP, no disk.

Invariants:
- a file is identified by its path relative to the folder (``rel``, '/'-separated) and
  compared by the sha256 of its bytes — the same hash Open WebUI keeps as ``file_hash``
  in the file's meta, so no local state decides what changed;
- only files the sync uploaded (``RemoteFile.ours``: their meta carries ``source_path``)
  are ever replaced or removed; files added to the collection by hand are left alone;
- a file still in the folder is never removed, even when it cannot be synced now (too
  big, unreadable): its last synced version stays until the folder is fixed;
- several copies of one path (an interrupted run) collapse to one: a copy with the
  folder's hash is kept, the others are removed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath

MIB = 1024 * 1024
HEAD_BYTES = 8192  # what Open WebUI's own text sniffing reads (routers/files.py _is_text_file)

# Open WebUI 0.12.4 with its default (built-in) content extraction engine
# (retrieval/loaders/main.py _get_loader): these have a loader of their own …
DOCUMENT_EXTS = frozenset({"pdf", "docx", "xlsx", "xls", "pptx", "csv", "htm", "html", "md", "txt", "rst", "xml"})
# … these it reads as text whatever their content type (its known_source_ext) …
SOURCE_EXTS = frozenset({
    "go", "py", "java", "sh", "bat", "ps1", "cmd", "js", "ts", "css", "cpp", "hpp", "h", "c", "cs", "ino",
    "sql", "log", "ini", "pl", "pm", "r", "dart", "dockerfile", "env", "php", "hs", "hsc", "lua",
    "nginxconf", "conf", "m", "mm", "plsql", "perl", "rb", "rs", "db2", "scala", "bash", "swift", "vue",
    "svelte", "ex", "exs", "erl", "tsx", "jsx", "lhs", "json", "yaml", "yml", "toml", "svg",
})
# … these only with the optional `unstructured` package, which its image does not ship
# (.ppt: its fallback, python-pptx, reads only .pptx; .xls has a fallback, pandas + xlrd);
# any other file is read as text, which fails on binary content.
NEEDS_UNSTRUCTURED = frozenset({"doc", "epub", "msg", "odt", "ppt"})


@dataclass(frozen=True)
class Limits:
    """Open WebUI's upload rules as its retrieval config states them."""

    max_mb: int | None = None  # FILE_MAX_SIZE (RAG_FILE_MAX_SIZE); None: no limit
    allowed_exts: tuple[str, ...] = ()  # ALLOWED_FILE_EXTENSIONS; empty: any


@dataclass(frozen=True)
class LocalFile:
    rel: str
    size: int
    sha256: str
    head: bytes = b""  # the first HEAD_BYTES bytes, for the binary test


@dataclass(frozen=True)
class RemoteFile:
    id: str
    rel: str
    sha256: str | None
    ours: bool  # uploaded by a sync (meta.data.source_path), so the sync manages it


@dataclass(frozen=True)
class Skip:
    rel: str
    reason: str
    refused: bool = False  # bad input the user must fix (exit 1), not merely a file type Open WebUI cannot read


@dataclass(frozen=True)
class Update:
    new: LocalFile
    old: tuple[RemoteFile, ...]  # removed once ``new`` is in


@dataclass(frozen=True)
class Plan:
    add: tuple[LocalFile, ...] = ()
    update: tuple[Update, ...] = ()
    remove: tuple[RemoteFile, ...] = ()
    skip: tuple[Skip, ...] = ()
    unchanged: int = 0
    foreign: int = 0  # files in the collection the sync did not put there (left alone)

    @property
    def uploads(self) -> int:
        return len(self.add) + len(self.update)


def ext_of(rel: str) -> str:
    """The extension as Open WebUI takes it: the text after the last dot, lower-case."""
    name = PurePosixPath(rel).name
    return name.rsplit(".", 1)[1].lower() if "." in name else ""


def why_not(f: LocalFile, limits: Limits) -> Skip | None:
    """None when Open WebUI can index ``f``, else the one-line reason it is skipped."""
    ext = ext_of(f.rel)
    shown = f".{ext}" if ext else "a file without an extension"
    if f.size == 0:
        return Skip(f.rel, "empty: nothing to index")
    if limits.max_mb and f.size > limits.max_mb * MIB:
        return Skip(f.rel, f"{f.size / MIB:,.1f} MB is over Open WebUI's upload limit of {limits.max_mb} MB "
                           "(RAG_FILE_MAX_SIZE) — split the file or raise the limit in Open WebUI's "
                           "Admin Settings › Documents", refused=True)
    if limits.allowed_exts and ext not in limits.allowed_exts:
        return Skip(f.rel, f"{shown} is not among Open WebUI's allowed file types "
                           f"({', '.join(limits.allowed_exts)})")
    if ext in NEEDS_UNSTRUCTURED:
        return Skip(f.rel, f"{shown} needs the optional 'unstructured' package, which Open WebUI's image "
                           "does not ship — save it as PDF, .docx, .pptx or .xlsx")
    if ext in DOCUMENT_EXTS or ext in SOURCE_EXTS:
        return None
    if b"\0" in f.head:
        return Skip(f.rel, f"binary file ({shown}): Open WebUI's built-in extractor reads documents "
                           "(PDF, Office, HTML, Markdown) and text only")
    return None


def plan(local: list[LocalFile], remote: list[RemoteFile], limits: Limits,
         unreadable: list[Skip] = ()) -> Plan:
    """The diff that makes the collection mirror the folder. ``unreadable`` are the files
    (or, with a trailing '/', folders) that could not even be read, a Skip each."""
    skips = list(unreadable)
    present = {s.rel for s in unreadable} | {f.rel for f in local}
    syncable: list[LocalFile] = []
    for f in local:
        s = why_not(f, limits)
        if s is None:
            syncable.append(f)
        else:
            skips.append(s)

    ours: dict[str, list[RemoteFile]] = defaultdict(list)
    foreign = 0
    for r in remote:
        if r.ours:
            ours[r.rel].append(r)
        else:
            foreign += 1

    add: list[LocalFile] = []
    update: list[Update] = []
    remove: list[RemoteFile] = []
    unchanged = 0
    for f in syncable:
        copies = ours.get(f.rel, [])
        same = [r for r in copies if r.sha256 == f.sha256]
        if same:
            unchanged += 1
            remove += [r for r in copies if r is not same[0]]
        elif copies:
            update.append(Update(f, tuple(copies)))
        else:
            add.append(f)
    hidden_dirs = tuple(s.rel for s in unreadable if s.rel.endswith("/"))  # a folder that could not be listed
    for rel, copies in ours.items():
        if rel not in present and not rel.startswith(hidden_dirs):
            remove += copies
    return Plan(
        add=tuple(sorted(add, key=lambda f: f.rel)),
        update=tuple(sorted(update, key=lambda u: u.new.rel)),
        remove=tuple(sorted(remove, key=lambda r: (r.rel, r.id))),
        skip=tuple(sorted(skips, key=lambda s: s.rel)),
        unchanged=unchanged,
        foreign=foreign,
    )
