"""Backup archives: layout, manifest, writing and verification (host side, no Docker).

Layout of ``<project>-backup-<UTC timestamp>.tar.gz``::

    volumes/<volume>/<path inside the volume>   regular files and directories only
    manifest.json                               written last (its hashes are known then)

Invariants:
- An archive is written to a hidden temp file (mode 0600) in the target folder and
  renamed into place only when complete, so a visible ``*.tar.gz`` is never partial.
- ``verify`` reads the WHOLE archive before anything else happens: gzip/tar must be
  readable to the end, every member must be a plain file or directory under
  ``volumes/<a volume the manifest lists>/`` (no absolute paths, no ``..``, no links,
  devices or fifos), every file must match the manifest's sha256 and size, and the
  manifest must list no file the archive lacks.
- Only ``verify``-checked archives are ever turned into restore streams.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from stackctl.config.settings import OPENWEBUI, VOLUMES
from stackctl.errors import StackError, UsageError

FORMAT = "foundry-chat-stack-backup/1"
MANIFEST = "manifest.json"
PREFIX = "volumes"
CHUNK = 1 << 20

# Re-creatable content left out of backups and kept in place on restore: Open WebUI's
# model caches (Hugging Face layout, full of symlinks, hundreds of MB).
EXCLUDED: dict[str, tuple[str, ...]] = {OPENWEBUI.volume: ("cache",)}
KNOWN_VOLUMES = VOLUMES


class ArchiveError(StackError):
    """The archive cannot be used; nothing was changed."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{Path(path).name}: {problem} — refused; nothing was changed", exit_code=1)


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    created_at: str
    stack_version: str
    project: str
    images: dict[str, str]
    openwebui_version: str
    volumes: tuple[str, ...]
    files: dict[str, FileEntry]
    openwebui_image: str = ""
    skipped: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    format: str = FORMAT

    def to_json(self) -> str:
        d = asdict(self)
        d["volumes"] = list(self.volumes)
        d["skipped"] = list(self.skipped)
        d["excluded"] = list(self.excluded)
        return json.dumps(d, indent=2, sort_keys=True) + "\n"

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def parse_manifest(text: bytes | str) -> Manifest:
    """Manifest from JSON; ValueError naming the first problem. Pure."""
    try:
        d = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"manifest.json is not JSON ({exc})") from None
    if not isinstance(d, dict):
        raise ValueError("manifest.json is not an object")
    if d.get("format") != FORMAT:
        raise ValueError(f"manifest format {d.get('format')!r} is not {FORMAT!r}")
    for key, typ in (("created_at", str), ("stack_version", str), ("project", str),
                     ("images", dict), ("openwebui_version", str), ("volumes", list),
                     ("files", dict)):
        if not isinstance(d.get(key), typ):
            raise ValueError(f"manifest key {key!r} is missing or not a {typ.__name__}")
    volumes = tuple(d["volumes"])
    unknown = [v for v in volumes if v not in KNOWN_VOLUMES]
    if unknown or not volumes:
        raise ValueError(f"manifest volumes {list(volumes)} must be some of {list(KNOWN_VOLUMES)}")
    files: dict[str, FileEntry] = {}
    for name, e in d["files"].items():
        if not (isinstance(e, dict) and isinstance(e.get("sha256"), str) and _HEX64.match(e["sha256"])
                and isinstance(e.get("size"), int) and e["size"] >= 0):
            raise ValueError(f"manifest entry for {name!r} needs a sha256 (64 hex) and a size")
        files[name] = FileEntry(e["sha256"], e["size"])
    return Manifest(created_at=d["created_at"], stack_version=d["stack_version"],
                    project=d["project"], images=dict(d["images"]),
                    openwebui_version=d["openwebui_version"], volumes=volumes, files=files,
                    openwebui_image=str(d.get("openwebui_image", "")),
                    skipped=tuple(d.get("skipped", ())), excluded=tuple(d.get("excluded", ())))


def member_problem(info: tarfile.TarInfo) -> str | None:
    """Why this member may not be in a backup archive, or None. Pure."""
    name = info.name
    p = PurePosixPath(name)
    if name.startswith("/") or p.is_absolute():
        return f"entry {name!r} has an absolute path"
    if ".." in p.parts:
        return f"entry {name!r} escapes the archive (..)"
    if info.issym() or info.islnk():
        return f"entry {name!r} is a link"
    if not (info.isfile() or info.isdir()):
        return f"entry {name!r} is not a regular file or directory"
    if name == MANIFEST:
        return None if info.isfile() else "manifest.json is not a file"
    if len(p.parts) < 2 or p.parts[0] != PREFIX or p.parts[1] not in KNOWN_VOLUMES:
        return f"entry {name!r} is outside volumes/<volume>/"
    return None


def split_member(name: str) -> tuple[str, str]:
    """'volumes/open-webui-data/a/b' → ('open-webui-data', 'a/b'). Pure."""
    parts = PurePosixPath(name).parts
    return parts[1], "/".join(parts[2:])


# -- writing ---------------------------------------------------------------------------


class _HashingReader(io.RawIOBase):
    def __init__(self, src) -> None:
        self.src = src
        self.h = hashlib.sha256()
        self.n = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.src.read(len(b))
        self.h.update(data)
        self.n += len(data)
        b[: len(data)] = data
        return len(data)


def archive_name(project: str, stamp: str) -> str:
    return f"{project}-backup-{stamp}.tar.gz"


class ArchiveWriter:
    """Write members, then ``commit(manifest_fields)`` renames the temp file into place.

    Use as a context manager: leaving the block without ``commit`` deletes the temp file.
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
        os.fchmod(fd, 0o600)
        self.tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb")
        self._tar = tarfile.open(  # noqa: SIM115 - closed by commit() or __exit__
            fileobj=self._fh, mode="w:gz", format=tarfile.PAX_FORMAT)
        self.files: dict[str, FileEntry] = {}
        self.skipped: list[str] = []
        self.excluded: list[str] = []
        self.committed = False

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc) -> None:
        if not self.committed:
            self._close()
            self.tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        if not self._tar.closed:
            self._tar.close()
        if not self._fh.closed:
            self._fh.close()

    def add_volume(self, volume: str, source: tarfile.TarFile) -> None:
        """Copy a volume's tar stream (names relative to the volume root) into volumes/<volume>/."""
        excluded = EXCLUDED.get(volume, ())
        for info in source:
            rel = _relative(info.name)
            if rel is None:  # the volume root: kept for its owner and mode
                if info.isdir():
                    self._tar.addfile(_copy_info(info, f"{PREFIX}/{volume}"))
                continue
            shown = f"{volume}/{rel}"
            if rel.split("/", 1)[0] in excluded:
                if "/" not in rel:
                    self.excluded.append(shown)
                continue
            if not (info.isfile() or info.isdir()):
                self.skipped.append(shown)  # links, sockets: not restorable by design
                continue
            out = _copy_info(info, f"{PREFIX}/{volume}/{rel}")
            if info.isdir():
                self._tar.addfile(out)
                continue
            out.size = info.size
            reader = _HashingReader(source.extractfile(info))
            self._tar.addfile(out, io.BufferedReader(reader, CHUNK))
            if reader.n != info.size:
                raise StackError(f"reading {shown} from the volume stopped after {reader.n} of "
                                 f"{info.size} bytes — nothing was written; retry `invoke backup`")
            self.files[out.name] = FileEntry(reader.h.hexdigest(), info.size)

    def commit(self, manifest: Manifest) -> Path:
        data = manifest.to_json().encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(data), 0o600
        self._tar.addfile(info, io.BytesIO(data))
        self._close()
        with open(self.tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.final)
        self.committed = True
        return self.final


def _copy_info(info: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    """A header for ``name`` with ``info``'s type, owner, mode and mtime (size 0)."""
    out = tarfile.TarInfo(name)
    out.type, out.mode, out.mtime = info.type, info.mode, info.mtime
    out.uid, out.gid, out.uname, out.gname = info.uid, info.gid, info.uname, info.gname
    return out


def _relative(name: str) -> str | None:
    """Volume-relative path of a get_archive member ('./a/b' → 'a/b'; the root → None)."""
    p = PurePosixPath(name)
    parts = [x for x in p.parts if x not in (".", "/")]
    return "/".join(parts) if parts else None


# -- verification ----------------------------------------------------------------------


def verify(path: Path) -> Manifest:
    """Read the whole archive and check it against its manifest; ArchiveError if unusable."""
    if not path.is_file():  # bad input (exit 2), not a bad archive
        raise UsageError(f"{path}: no such file — check the path (`invoke backup` writes to backups/)")
    seen: dict[str, FileEntry] = {}
    manifest_bytes: bytes | None = None
    try:
        with gzip.open(path, "rb") as gz:
            raw = _LastRead(gz)
            with tarfile.open(fileobj=raw, mode="r:") as tar:
                for info in tar:
                    problem = member_problem(info)
                    if problem and not seen and manifest_bytes is None \
                            and PurePosixPath(info.name).parts[:1] != (PREFIX,) and "escapes" not in problem \
                            and "absolute" not in problem:
                        raise ArchiveError(path, f"is not a backup made by this stack (it starts with "
                                                 f"{info.name!r}; a backup holds {PREFIX}/<volume>/… and "
                                                 f"{MANIFEST}) — choose an archive `invoke backup` wrote")
                    if problem:
                        raise ArchiveError(path, problem)
                    if info.isdir():
                        continue
                    fh = tar.extractfile(info)
                    assert fh is not None
                    if info.name == MANIFEST:
                        manifest_bytes = fh.read()
                        continue
                    if info.name in seen:
                        raise ArchiveError(path, f"entry {info.name!r} appears twice")
                    seen[info.name] = _digest(fh)
            # tarfile ends quietly at a damaged header: the block it stopped at must be
            # the end-of-archive zeros, and so must the rest (read to the end: gzip CRC).
            if raw.last.strip(b"\0") or any(c.strip(b"\0") for c in iter(functools.partial(gz.read, CHUNK), b"")):
                raise ArchiveError(path, "not a readable .tar.gz (truncated or corrupt: a damaged entry header)")
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArchiveError(path, f"not a readable .tar.gz (truncated or corrupt: {_short(exc)})") from None
    if manifest_bytes is None:
        raise ArchiveError(path, "has no manifest.json (not a stack backup)")
    try:
        manifest = parse_manifest(manifest_bytes)
    except ValueError as exc:
        raise ArchiveError(path, str(exc)) from None
    problems = compare(manifest, seen)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ArchiveError(path, problems[0] + more)
    return manifest


class _LastRead(io.RawIOBase):
    """File wrapper remembering the bytes of the last ``read`` (tarfile's last header block)."""

    def __init__(self, fh) -> None:
        self.fh = fh
        self.last = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.last = self.fh.read(n)
        return self.last

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.fh.seek(pos, whence)

    def tell(self) -> int:
        return self.fh.tell()


def compare(manifest: Manifest, seen: dict[str, FileEntry]) -> list[str]:
    """Differences between the manifest and the files found, worst first. Pure."""
    problems = []
    for name, want in sorted(manifest.files.items()):
        got = seen.get(name)
        if got is None:
            problems.append(f"{name} is listed in the manifest but missing")
        elif got.size != want.size:
            problems.append(f"{name} has {got.size} bytes, the manifest says {want.size}")
        elif got.sha256 != want.sha256:
            problems.append(f"checksum mismatch for {name}")
    for name in sorted(set(seen) - set(manifest.files)):
        problems.append(f"{name} is not listed in the manifest")
    for name in seen:
        vol, _ = split_member(name)
        if vol not in manifest.volumes:
            problems.append(f"{name} belongs to a volume the manifest does not list")
            break
    return problems


def _digest(fh) -> FileEntry:
    h = hashlib.sha256()
    n = 0
    for chunk in iter(lambda: fh.read(CHUNK), b""):
        h.update(chunk)
        n += len(chunk)
    return FileEntry(h.hexdigest(), n)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


# -- restore streams -------------------------------------------------------------------


def volume_stream(path: Path, volume: str) -> Iterator[bytes]:
    """An uncompressed tar of one volume's members, named ``<volume>/<rel>``, in chunks
    (memory stays at one chunk whatever the file sizes).

    Only for archives ``verify`` accepted (members are plain files/dirs with safe names).
    """
    with tarfile.open(path, mode="r:gz") as src:
        for info in src:
            if info.name == MANIFEST or split_member(info.name)[0] != volume:
                continue
            vol, rel = split_member(info.name)
            new = _copy_info(info, f"{vol}/{rel}" if rel else vol)
            new.size = info.size if info.isfile() else 0
            yield new.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            if info.isfile():
                fh = src.extractfile(info)
                assert fh is not None
                yield from iter(functools.partial(fh.read, CHUNK), b"")
                if info.size % tarfile.BLOCKSIZE:
                    yield tarfile.NUL * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)
