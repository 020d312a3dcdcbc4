"""Reading a folder for a sync: every regular file under it with its size, sha256 and
first bytes. Hidden files and folders (a leading dot: .git, .DS_Store) are not part of
the collection; symlinked folders are not followed (no loops, nothing outside)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from stackctl.knowledge.plan import HEAD_BYTES, LocalFile, Skip


def scan(root: Path) -> tuple[list[LocalFile], list[Skip]]:
    """The files under ``root`` and, as refused Skips, those that cannot be read."""
    files: list[LocalFile] = []
    unreadable: list[Skip] = []
    for here, dirs, names in os.walk(root, onerror=lambda e: unreadable.append(_unreadable(root, e))):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(here) / name
            rel = path.relative_to(root).as_posix()
            if not path.is_file():  # sockets, fifos, dangling links
                continue
            try:
                files.append(read(path, rel))
            except OSError as e:
                unreadable.append(_unreadable(root, e, rel))
    return files, unreadable


def read(path: Path, rel: str) -> LocalFile:
    h = hashlib.sha256()
    head = b""
    size = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            if not head:
                head = chunk[:HEAD_BYTES]
            h.update(chunk)
            size += len(chunk)
    return LocalFile(rel=rel, size=size, sha256=h.hexdigest(), head=head)


def _unreadable(root: Path, err: OSError, rel: str | None = None) -> Skip:
    if rel is None:
        rel = Path(err.filename).relative_to(root).as_posix() + "/" if err.filename else str(root)
    why = err.strerror or type(err).__name__
    return Skip(rel, f"cannot be read ({why.lower()}) — fix its permissions, or move it out of the folder",
                refused=True)
