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
- Nothing big is read before the limits pass (``Limits``: total expanded size, entry
  count, manifest size, checked on each header before its data is hashed; sparse
  entries refused outright; a byte budget on the decompressed stream backs them up),
  so a small archive that expands to terabytes is refused in milliseconds.
- Restore streams come from the ONE open file ``open_verified`` checked (never the
  path again), and every member is hashed again on the way out: a file swapped or
  rewritten after verification is never restored.
- The manifest may carry the stack's credentials (``secrets``: .env values needed to
  sign in again); they are never part of a repr or any output.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import io
import json
import os
import re
import signal
import stat
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath

from stackctl.config.settings import OPENWEBUI, VOLUMES
from stackctl.console import cmd
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
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # .env credentials (or none)

    def to_json(self) -> str:
        d = asdict(self)
        d["volumes"] = list(self.volumes)
        d["skipped"] = list(self.skipped)
        d["excluded"] = list(self.excluded)
        if not self.secrets:
            del d["secrets"]  # `backup --no-secrets`: the key is absent, not empty
        return json.dumps(d, indent=2, sort_keys=True) + "\n"

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")


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
    secrets = d.get("secrets", {})
    if not (isinstance(secrets, dict) and all(isinstance(k, str) and _KEY.match(k) and isinstance(v, str)
                                              and "\n" not in v for k, v in secrets.items())):
        raise ValueError("manifest key 'secrets' must map .env keys to one-line values")
    return Manifest(created_at=d["created_at"], stack_version=d["stack_version"],
                    project=d["project"], images=dict(d["images"]),
                    openwebui_version=d["openwebui_version"], volumes=volumes, files=files,
                    openwebui_image=str(d.get("openwebui_image", "")),
                    skipped=tuple(d.get("skipped", ())), excluded=tuple(d.get("excluded", ())),
                    secrets=dict(secrets))


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
    if info.issparse():  # a few bytes that expand to any size; backups never write one
        return f"entry {name!r} is a sparse file"
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
                                 f"{info.size} bytes — nothing was written; retry `{cmd('backup')}`")
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


# -- limits ------------------------------------------------------------------------------

GiB = 1 << 30
SIZE_FLOOR = 8 * GiB       # the default limit never goes below this (a fresh clone has no live data)
SIZE_FACTOR = 4            # … and is this many times the live data the restore replaces
MAX_FILES = 100_000
MANIFEST_PER_FILE = 512    # manifest bytes allowed per allowed entry (a listed file takes ~200)
TRAILER = 1 << 20          # zeros allowed after the tar's end (writers pad to a 10 KiB record)


@dataclass(frozen=True)
class Limits:
    """What an archive may expand to; checked on each header before its data is read."""

    max_bytes: int = SIZE_FLOOR
    max_files: int = MAX_FILES
    why: str = f"the default floor; restore derives it from the live data (×{SIZE_FACTOR})"

    @property
    def max_manifest(self) -> int:
        return MANIFEST_PER_FILE * self.max_files + (1 << 20)

    @property
    def max_stream(self) -> int:
        """Decompressed bytes the whole archive may take: data + headers + manifest + padding."""
        return self.max_bytes + self.max_files * 3 * tarfile.BLOCKSIZE + self.max_manifest + TRAILER


def size_limit(live_bytes: int) -> Limits:
    """The default restore limit: ``SIZE_FACTOR`` × the live data, at least ``SIZE_FLOOR``. Pure."""
    if live_bytes * SIZE_FACTOR > SIZE_FLOOR:
        return Limits(live_bytes * SIZE_FACTOR,
                      why=f"{SIZE_FACTOR}× the {human(live_bytes)} of live data the restore replaces")
    return Limits(why=f"the floor: {SIZE_FACTOR}× the {human(live_bytes)} of live data is less")


def parse_size(text: str) -> int:
    """'20G', '500M', '1.5T', '123' (bytes) → bytes; ValueError otherwise. Pure."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"{text!r} is not a size (e.g. 20G, 500M)")
    return int(float(m[1]) * 1024 ** " KMGT".index(m[2].upper() or " "))


def human(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


# Set by the command line (`restore --max-size/--max-files`) around one restore:
# {"max_bytes": n, "max_files": n}, either or both.
LIMITS_OVERRIDE: ContextVar[dict[str, int]] = ContextVar("LIMITS_OVERRIDE", default={})  # noqa: B039 - never mutated


def restore_limits(live_bytes: int | None = None) -> Limits:
    """The limits a restore applies: from the live data (or the floor), then the overrides."""
    base = size_limit(live_bytes) if live_bytes is not None else Limits()
    over = LIMITS_OVERRIDE.get()
    if "max_bytes" in over:
        base = replace(base, max_bytes=over["max_bytes"], why="set by --max-size")
    if "max_files" in over:
        base = replace(base, max_files=over["max_files"])
    return base


class _OverBudget(Exception):
    pass


# -- verification ----------------------------------------------------------------------


class VerifiedArchive:
    """An archive ``open_verified`` accepted, still open: restore streams come from this
    open file (a path swapped or rewritten afterwards changes nothing it yields)."""

    def __init__(self, path: Path, fh, manifest: Manifest) -> None:
        self.path, self._fh, self.manifest = path, fh, manifest

    def __enter__(self) -> VerifiedArchive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._fh.close()

    def stream(self, volume: str) -> Iterator[bytes]:
        """An uncompressed tar of one volume's members (``<volume>/<rel>``), in chunks.

        Each file is hashed again as it goes out; if the bytes under the open file
        changed since verification, ArchiveError before the tar's end (a restore
        stages first, so the live data is untouched)."""
        want = {n: e for n, e in self.manifest.files.items() if split_member(n)[0] == volume}
        sent: set[str] = set()
        with gzip.GzipFile(fileobj=_PositionalReader(self._fh.fileno()), mode="rb") as gz, \
                tarfile.open(fileobj=gz, mode="r|") as src:
            for info in src:
                if info.name == MANIFEST or split_member(info.name)[0] != volume:
                    continue
                if member_problem(info) or (info.isfile() and (
                        info.name not in want or want[info.name].size != info.size)):
                    raise self._changed(info.name)
                vol, rel = split_member(info.name)
                new = _copy_info(info, f"{vol}/{rel}" if rel else vol)
                new.size = info.size if info.isfile() else 0
                yield new.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
                if info.isfile():
                    fh = src.extractfile(info)
                    assert fh is not None
                    h = hashlib.sha256()
                    for chunk in iter(functools.partial(fh.read, CHUNK), b""):
                        h.update(chunk)
                        yield chunk
                    if h.hexdigest() != want[info.name].sha256:
                        raise self._changed(info.name)
                    sent.add(info.name)
                    if info.size % tarfile.BLOCKSIZE:
                        yield tarfile.NUL * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
        if sent != set(want):
            raise self._changed(sorted(set(want) - sent)[0])
        yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)

    def _changed(self, name: str) -> ArchiveError:
        return ArchiveError(self.path, f"{name} changed after the archive was verified (is something "
                                       "writing to it?) — copy the archive somewhere private and retry")


class _PositionalReader(io.RawIOBase):
    """Reads an fd from offset 0 with pread: its own position, the fd's inode, not the path."""

    def __init__(self, fd: int) -> None:
        self.fd, self.pos = fd, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = os.pread(self.fd, len(b), self.pos)
        self.pos += len(data)
        b[: len(data)] = data
        return len(data)


def open_verified(path: Path, limits: Limits | None = None) -> VerifiedArchive:
    """Open ``path`` once, check it whole against its manifest within ``limits``; the
    returned VerifiedArchive streams from that same open file. ArchiveError if unusable."""
    limits = limits or restore_limits()
    try:
        fh = open(path, "rb")  # noqa: SIM115 - owned by the VerifiedArchive (or closed below)
    except FileNotFoundError:  # bad input (exit 2), not a bad archive
        raise UsageError(f"{path}: no such file — check the path (`{cmd('backup')}` writes to backups/)") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory — name a .tar.gz `{cmd('backup')}` wrote") from None
    try:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # a fifo or device never ends
            raise UsageError(f"{path}: not a regular file — name a .tar.gz `{cmd('backup')}` wrote")
        manifest = _check(path, fh, limits)
    except BaseException:
        fh.close()
        raise
    return VerifiedArchive(path, fh, manifest)


def verify(path: Path, limits: Limits | None = None) -> Manifest:
    """Read the whole archive and check it against its manifest; ArchiveError if unusable."""
    with open_verified(path, limits) as archive:
        return archive.manifest


def _check(path: Path, fh, limits: Limits) -> Manifest:
    seen: dict[str, FileEntry] = {}
    manifest_bytes: bytes | None = None
    count = expanded = 0
    try:
        with gzip.GzipFile(fileobj=_PositionalReader(fh.fileno()), mode="rb") as gz:
            raw = _LastRead(gz, limits.max_stream)
            with tarfile.open(fileobj=raw, mode="r:") as tar:
                for info in tar:
                    problem = member_problem(info)
                    if problem and not seen and manifest_bytes is None \
                            and PurePosixPath(info.name).parts[:1] != (PREFIX,) and "escapes" not in problem \
                            and "absolute" not in problem:
                        raise ArchiveError(path, f"is not a backup made by this stack (it starts with "
                                                 f"{info.name!r}; a backup holds {PREFIX}/<volume>/… and "
                                                 f"{MANIFEST}) — choose an archive `{cmd('backup')}` wrote")
                    if problem:
                        raise ArchiveError(path, problem)
                    count += 1
                    expanded += info.size if info.name != MANIFEST else 0  # the manifest has its own cap
                    _within(path, limits, count, expanded, info)
                    if info.isdir():
                        continue
                    fh_member = tar.extractfile(info)
                    assert fh_member is not None
                    if info.name == MANIFEST:
                        manifest_bytes = fh_member.read()
                        continue
                    if info.name in seen:
                        raise ArchiveError(path, f"entry {info.name!r} appears twice")
                    seen[info.name] = _digest(fh_member)
            # tarfile ends quietly at a damaged header: the block it stopped at must be
            # the end-of-archive zeros, and so must the rest (read to the end: gzip CRC).
            if raw.last.strip(b"\0") or any(c.strip(b"\0") for c in iter(functools.partial(raw.read, CHUNK), b"")):
                raise ArchiveError(path, "not a readable .tar.gz (truncated or corrupt: a damaged entry header)")
    except ArchiveError:
        raise
    except _OverBudget:
        raise ArchiveError(path, f"expands past {human(limits.max_stream)} of tar data (the size limit "
                                 f"{human(limits.max_bytes)} is {limits.why}) — if you trust it, raise it with "
                                 f"`{cmd('restore FILE --max-size SIZE')}`") from None
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


def _within(path: Path, limits: Limits, count: int, expanded: int, info: tarfile.TarInfo) -> None:
    """ArchiveError when this header breaks a limit (its data is not read yet)."""
    if count > limits.max_files:
        raise ArchiveError(path, f"has more than {limits.max_files:,} entries (the entry limit) — if you "
                                 f"trust it, raise it with `{cmd('restore FILE --max-files N')}`")
    if info.name == MANIFEST and info.size > limits.max_manifest:
        raise ArchiveError(path, f"manifest.json is {human(info.size)}, over the manifest limit of "
                                 f"{human(limits.max_manifest)} ({MANIFEST_PER_FILE} bytes per allowed entry) "
                                 f"— if you trust it, raise it with `{cmd('restore FILE --max-files N')}`")
    if expanded > limits.max_bytes:
        raise ArchiveError(path, f"expands to more than {human(limits.max_bytes)} (at {info.name!r}: "
                                 f"{human(info.size)}); the size limit is {limits.why} — if you trust it, "
                                 f"raise it with `{cmd('restore FILE --max-size SIZE')}`")


class _LastRead(io.RawIOBase):
    """File wrapper remembering the bytes of the last ``read`` (tarfile's last header block)
    and refusing to go past ``budget`` decompressed bytes (pax headers, skips, trailers)."""

    def __init__(self, fh, budget: int) -> None:
        self.fh = fh
        self.last = b""
        self.budget = budget

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n < 0 or self.fh.tell() + n > self.budget:
            n = max(0, self.budget - self.fh.tell()) + 1
        self.last = self.fh.read(n)
        if self.fh.tell() > self.budget:
            raise _OverBudget
        return self.last

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0 and pos > self.budget:
            raise _OverBudget
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


def volume_stream(archive: VerifiedArchive | Path, volume: str) -> Iterator[bytes]:
    """An uncompressed tar of one volume's members, named ``<volume>/<rel>``, in chunks
    (memory stays at one chunk whatever the file sizes).

    From a VerifiedArchive: its open file (see ``VerifiedArchive.stream``). From a
    path: the file is opened and verified first, then streamed from that open file.
    """
    if isinstance(archive, VerifiedArchive):
        yield from archive.stream(volume)
        return
    with open_verified(Path(archive)) as opened:
        yield from opened.stream(volume)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM is handled like Ctrl-C (a KeyboardInterrupt the caller's clean-up sees),
    not a silent death, while the block runs — restore's swap and bundle's load."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    old = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
