"""Offline bundles: every image the stack runs, and optionally a model folder, in ONE file.

Layout of a bundle (an uncompressed tar: image layers are compressed already)::

    bundle-format          the format line: a bundle is recognised at its first header
    images/<KEY>.tar       the ``docker save`` stream of the image .env key KEY names
    model/<path>           the files of a local model folder (optional)
    manifest.json          written last: each image's key, reference, id, platform, and
                           every member's size and sha256

Invariants:
- ``save`` writes a hidden temp file beside the target and renames it into place only
  when complete: a file at the target path is always a whole bundle. It never
  overwrites one unless told to.
- ``open_bundle`` reads the WHOLE file before anything is loaded or written: the first
  member is the format line, every member is a plain file or directory under its
  folder (no absolute paths, ``..``, links, devices, sparse members, or a size past the
  end of the file), every member matches the manifest's size and sha256, the manifest
  lists no member the file lacks and the file holds none it does not list.
- ``load`` streams from the ONE open file it verified, hashing again on the way: the
  last chunk of an image goes to Docker only once its hash matches, and a model file is
  renamed into place only after every file matched. Anything that fails or is
  interrupted (Ctrl-C, SIGTERM) puts the images' tags back as they were and leaves no
  model folder; .env is written last, after everything else succeeded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

from stackctl import __version__
from stackctl.config import envfile
from stackctl.config.settings import BASE_IMAGE_KEY, IMAGE_KEYS, SERVICES
from stackctl.config.stack import Stack
from stackctl.console import cmd
from stackctl.day2.archive import (
    CHUNK,
    MANIFEST_PER_FILE,
    MAX_FILES,
    FileEntry,
    human,
    sigterm_as_interrupt,
)
from stackctl.errors import StackError, UsageError

FORMAT = "foundry-chat-stack-bundle/1"
MARKER = "bundle-format"
MANIFEST = "manifest.json"
IMAGES = "images"
MODEL = "model"
MODELS_HOME = "models"  # where `bundle load` puts a model folder by default (project-relative)
BUNDLE_KEYS: tuple[str, ...] = (*IMAGE_KEYS, BASE_IMAGE_KEY)
MAX_MANIFEST = MANIFEST_PER_FILE * MAX_FILES + (1 << 20)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$")  # a docker reference; safe in .env
_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a model folder's name: one path component

Progress = Callable[[str, int, int], None]  # (what, bytes done, bytes expected)
Say = Callable[[str], None]  # a line about a wait that has no byte count (Docker working)


class BundleError(StackError):
    """The bundle cannot be used; nothing was loaded or written."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{Path(path).name}: {problem} — refused; nothing was loaded or written "
                         f"(copy the bundle again, or write a new one with `{cmd('bundle save FILE')}`)")


def user_path(text: str) -> Path:
    """A path the user typed, as their shell means it: relative to where they typed the
    command (the wrappers pass it in STACK_CWD; they run from the project root)."""
    here = Path(os.environ.get("STACK_CWD") or os.getcwd())
    return (here / Path(text).expanduser()).resolve()


def shown_path(path: Path, root: Path) -> str:
    """How a hint names ``path``: project-relative when the user is at the project root
    (where ``./stack`` hints are typed), else absolute. Pure but for the cwd."""
    here = Path(os.environ.get("STACK_CWD") or os.getcwd()).resolve()
    if here == root.resolve() and path.is_relative_to(here):
        return str(path.relative_to(here))
    return str(path)


# -- the manifest (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class ImageEntry:
    key: str            # the .env key
    ref: str            # the reference it named on the machine that saved it
    id: str             # sha256:… (docker load gives the same id back)
    os: str
    architecture: str
    member: str         # images/<KEY>.tar (keys naming the same reference share one)
    size: int           # bytes of the docker save stream
    sha256: str


@dataclass(frozen=True)
class Manifest:
    created_at: str
    stack_version: str
    images: tuple[ImageEntry, ...]
    model_name: str = ""                                  # the model folder's name, or none
    model_files: dict[str, FileEntry] = field(default_factory=dict)  # model/<path> → entry
    skipped: tuple[str, ...] = ()                         # images left out, and why
    format: str = FORMAT

    def to_json(self) -> str:
        d = asdict(self)
        d["images"] = [asdict(i) for i in self.images]
        d["skipped"] = list(self.skipped)
        return json.dumps(d, indent=2, sort_keys=True) + "\n"

    @property
    def members(self) -> dict[str, FileEntry]:
        """Every data member the bundle must hold, with its size and sha256."""
        return {i.member: FileEntry(i.sha256, i.size) for i in self.images} | self.model_files

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.members.values())


def parse_manifest(text: bytes | str) -> Manifest:
    """Manifest from JSON; ValueError naming the first problem. Pure."""
    try:
        d = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{MANIFEST} is not JSON ({exc})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ValueError(f"manifest format {d.get('format') if isinstance(d, dict) else None!r} is not {FORMAT!r}")
    for key, typ in (("created_at", str), ("stack_version", str), ("images", list), ("model_name", str),
                     ("model_files", dict), ("skipped", list)):
        if not isinstance(d.get(key), typ):
            raise ValueError(f"manifest key {key!r} is missing or not a {typ.__name__}")
    images, members = [], {}
    for e in d["images"]:
        if not isinstance(e, dict) or set(e) != {f for f in ImageEntry.__dataclass_fields__}:
            raise ValueError(f"manifest image entry {e!r} must have exactly {sorted(ImageEntry.__dataclass_fields__)}")
        i = ImageEntry(**e)
        problem = (f"key {i.key!r} is not one of {list(BUNDLE_KEYS)}" if i.key not in BUNDLE_KEYS else
                   f"reference {i.ref!r} is not an image reference" if not (isinstance(i.ref, str) and _REF.match(i.ref)) else
                   f"id {i.id!r} is not sha256:<64 hex>" if not (isinstance(i.id, str) and _ID.match(i.id)) else
                   f"member {i.member!r} is not {IMAGES}/<KEY>.tar" if i.member not in _image_members() else
                   "needs a size and a sha256 (64 hex)" if not _entry_ok(i.size, i.sha256) else
                   "needs os and architecture" if not (isinstance(i.os, str) and isinstance(i.architecture, str)) else
                   f"{i.member} is listed with two different checksums"
                   if members.get(i.member, (i.sha256, i.size)) != (i.sha256, i.size) else None)
        if problem:
            raise ValueError(f"manifest image {i.key!r}: {problem}")
        if any(x.key == i.key for x in images):
            raise ValueError(f"manifest lists {i.key} twice")
        members[i.member] = (i.sha256, i.size)
        images.append(i)
    if not images:
        raise ValueError("manifest lists no image")
    name = d["model_name"]
    if name and not _NAME.match(name):
        raise ValueError(f"manifest model_name {name!r} is not a folder name")
    files = {}
    for member, e in d["model_files"].items():
        if not (name and isinstance(e, dict) and _entry_ok(e.get("size"), e.get("sha256"))
                and _under(member, MODEL) and not _unsafe(member)):
            raise ValueError(f"manifest model file {member!r} needs a model_name, a {MODEL}/<path> name, "
                             "a size and a sha256")
        files[member] = FileEntry(e["sha256"], e["size"])
    return Manifest(created_at=d["created_at"], stack_version=d["stack_version"], images=tuple(images),
                    model_name=name, model_files=files, skipped=tuple(str(s) for s in d["skipped"]))


def _entry_ok(size: object, sha: object) -> bool:
    return isinstance(size, int) and not isinstance(size, bool) and size >= 0 \
        and isinstance(sha, str) and bool(_HEX64.match(sha))


def _image_members() -> set[str]:
    return {f"{IMAGES}/{k}.tar" for k in BUNDLE_KEYS}


def _under(name: str, folder: str) -> bool:
    parts = PurePosixPath(name).parts
    return len(parts) >= 2 and parts[0] == folder


def _unsafe(name: str) -> str | None:
    p = PurePosixPath(name)
    if name.startswith("/") or p.is_absolute():
        return f"entry {name!r} has an absolute path"
    if ".." in p.parts or "\\" in name:
        return f"entry {name!r} escapes the bundle (..)"
    return None


def member_problem(info: tarfile.TarInfo, file_size: int) -> str | None:
    """Why this member may not be in a bundle, or None. Pure."""
    name = info.name
    if (why := _unsafe(name)) is not None:
        return why
    if info.issym() or info.islnk():
        return f"entry {name!r} is a link"
    if info.issparse():  # a few bytes that read as any size; save never writes one
        return f"entry {name!r} is a sparse file"
    if not (info.isfile() or info.isdir()):
        return f"entry {name!r} is not a regular file or directory"
    if info.isfile() and info.offset_data + info.size > file_size:
        return (f"truncated: entry {name!r} says {human(info.size)} but the file ends "
                f"{human(max(0, file_size - info.offset_data))} later")
    if name in (MARKER, MANIFEST) or name in _image_members():
        return None if info.isfile() else f"entry {name!r} is not a file"
    if (name == MODEL and info.isdir()) or _under(name, MODEL):
        return None
    return f"entry {name!r} is not part of a bundle ({IMAGES}/<KEY>.tar, {MODEL}/…, {MANIFEST})"


def compare(manifest: Manifest, seen: dict[str, FileEntry]) -> list[str]:
    """Differences between the manifest and the members found, worst first. Pure."""
    problems = []
    want = manifest.members
    for name, w in sorted(want.items()):
        got = seen.get(name)
        if got is None:
            problems.append(f"{name} is listed in the manifest but missing")
        elif got.size != w.size:
            problems.append(f"{name} has {got.size} bytes, the manifest says {w.size}")
        elif got.sha256 != w.sha256:
            problems.append(f"checksum mismatch for {name}")
    problems += [f"{name} is not listed in the manifest" for name in sorted(set(seen) - set(want))]
    return problems


def platform_problems(manifest: Manifest, engine_os: str, engine_arch: str) -> list[str]:
    """Images built for another platform than this engine's. Pure."""
    return [f"{i.key}={i.ref} is {i.os}/{i.architecture}, this Docker Engine runs {engine_os}/{engine_arch}"
            for i in manifest.images if (i.os, i.architecture) != (engine_os, engine_arch)]


# -- which images (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    id: str
    os: str
    architecture: str
    size: int  # the engine's own size of the image (≈ its save stream)


@dataclass(frozen=True)
class Plan:
    images: tuple[tuple[str, str, ImageFacts], ...]   # (key, ref, facts) to save
    skipped: tuple[str, ...]                          # left out, and why
    missing: tuple[tuple[str, str], ...]              # (key, ref) needed but not here


def plan(stack: Stack, inspect: Callable[[str], ImageFacts | None]) -> Plan:
    """What a bundle of this stack holds: the image of every enabled service and the base
    image the stack builds on (required), the images `up` builds (if built already) and
    those of services this .env does not enable (if present). Pure but for ``inspect``."""
    built = {s.image_key for s in SERVICES if s.build}
    optional = built | {s.image_key for s in SERVICES if s.name not in stack.services}
    take, skipped, missing = [], [], []
    for key in BUNDLE_KEYS:
        ref = stack.env[key]
        facts = inspect(ref)
        if facts is not None:
            take.append((key, ref, facts))
        elif key in built:
            skipped.append(f"{key}={ref} (not built yet: `up` builds it from {BASE_IMAGE_KEY} offline too)")
        elif key in optional:
            skipped.append(f"{key}={ref} (not present; this .env's profiles do not run it)")
        else:
            missing.append((key, ref))
    return Plan(tuple(take), tuple(skipped), tuple(missing))


def missing_message(missing: Iterable[tuple[str, str]]) -> str:
    """The one message for images a bundle needs that are not on this machine. Pure."""
    missing = list(missing)
    listed = "; ".join(f"{k}={ref}" for k, ref in missing)
    pulls = " && ".join(f"docker pull {ref}" for _, ref in missing)
    return (f"{len(missing)} image(s) the stack runs are not on this machine: {listed} — on a connected "
            f"machine pull them (`{pulls}`) or point those keys in .env at local images, then retry")


def env_updates(env: dict[str, str], manifest: Manifest) -> dict[str, str]:
    """The .env image keys to point at the bundle's references (those that differ). Pure."""
    return {i.key: i.ref for i in manifest.images if env.get(i.key) != i.ref}


# -- the Docker side (a seam: tests may hand in their own) ------------------------------------


class ImageStore(Protocol):
    def inspect(self, ref: str) -> ImageFacts | None: ...
    def save(self, ref: str) -> Iterable[bytes]: ...
    def load(self, chunks: Iterator[bytes]) -> None: ...
    def tag(self, image_id: str, ref: str) -> None: ...
    def remove(self, ref_or_id: str) -> None: ...
    def platform(self) -> tuple[str, str]: ...


class DockerImages:
    """ImageStore on the Docker Engine API (the SDK's low-level client)."""

    def __init__(self, client) -> None:
        self.api = client.api
        self.api.timeout = 3600  # a multi-GB load answers only once the engine has unpacked it

    def inspect(self, ref: str) -> ImageFacts | None:
        import docker.errors

        try:
            a = self.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
        return ImageFacts(a["Id"], a.get("Os", ""), a.get("Architecture", ""), int(a.get("Size") or 0))

    def save(self, ref: str) -> Iterator[bytes]:
        with _engine_errors(f"docker save {ref}", "retry; `docker system df` shows the engine's disk use"):
            yield from self.api.get_image(ref, chunk_size=CHUNK)

    def load(self, chunks: Iterator[bytes]) -> None:
        fix = "check the engine's free disk space (`docker system df`) and retry"
        with _engine_errors("docker load", fix):
            for ev in self.api.load_image(chunks, quiet=True):
                if ev.get("error"):
                    raise StackError(f"docker load failed: {str(ev['error']).strip()[:200]} — {fix}")

    def tag(self, image_id: str, ref: str) -> None:
        from docker.utils import parse_repository_tag

        repo, tag = parse_repository_tag(ref)
        self.api.tag(image_id, repo, tag)

    def remove(self, ref_or_id: str) -> None:
        self.api.remove_image(ref_or_id)

    def platform(self) -> tuple[str, str]:
        v = self.api.version()
        return v.get("Os", ""), v.get("Arch", "")


@contextlib.contextmanager
def _engine_errors(what: str, fix: str) -> Iterator[None]:
    """The engine's and the transport's exceptions as one line (StackError)."""
    import docker.errors
    import requests

    try:
        yield
    except (docker.errors.DockerException, requests.RequestException) as exc:
        text = str(getattr(exc, "explanation", None) or exc).strip().splitlines()
        raise StackError(f"{what} failed: {(text[-1] if text else type(exc).__name__)[:200]} — {fix}") from None


# -- writing ------------------------------------------------------------------------------


class _TarOut:
    """Tar members written straight to a file; a member's header is written with size 0
    and rewritten once its data is in (a docker save stream's size is known only then).
    GNU headers keep their length whatever the size (base-256 past 8 GiB)."""

    def __init__(self, fh) -> None:
        self.fh = fh

    def add(self, name: str, chunks: Iterable[bytes], progress: Callable[[int], None] = lambda n: None,
            mode: int = 0o644) -> FileEntry:
        info = tarfile.TarInfo(name)
        info.mode, info.mtime = mode, int(time.time())
        start = self.fh.tell()
        head = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
        self.fh.write(head)
        h, n = hashlib.sha256(), 0
        for chunk in chunks:
            self.fh.write(chunk)
            h.update(chunk)
            n += len(chunk)
            progress(n)
        if n % tarfile.BLOCKSIZE:
            self.fh.write(tarfile.NUL * (tarfile.BLOCKSIZE - n % tarfile.BLOCKSIZE))
        end = self.fh.tell()
        info.size = n
        final = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
        assert len(final) == len(head)
        self.fh.seek(start)
        self.fh.write(final)
        self.fh.seek(end)
        return FileEntry(h.hexdigest(), n)

    def close(self) -> None:
        self.fh.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def model_files(folder: Path) -> list[tuple[str, Path]]:
    """(member name, path) of every file in a model folder; UsageError on a link or a
    special file (a bundle carries plain files only)."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            raise UsageError(f"--model-path {folder}: {rel} is a link or a special file — a bundle carries "
                             "plain files only; copy the folder with the links resolved (`cp -rL`)")
        if p.is_file():
            out.append((f"{MODEL}/{rel}", p))
    return out


@dataclass(frozen=True)
class SaveResult:
    path: Path
    manifest: Manifest
    bytes: int
    seconds: float


def check_target(path: Path, force: bool) -> None:
    if path.is_dir():
        raise UsageError(f"{path} is a directory — name the bundle file, e.g. {path / 'stack.bundle'}")
    if path.exists() and not force:
        raise UsageError(f"{path} already exists — choose another name or pass --force to replace it")


def save(path: Path, stack: Stack, store: ImageStore, *, model_path: Path | None = None, force: bool = False,
         progress: Progress = lambda what, done, total: None, say: Say = lambda msg: None) -> SaveResult:
    """Write the bundle of ``stack``'s images (and ``model_path``) to ``path``, atomically."""
    t0 = time.monotonic()
    check_target(path, force)
    p = plan(stack, store.inspect)
    if p.missing:
        raise StackError(missing_message(p.missing), exit_code=2)
    files = model_files(model_path) if model_path else []
    path.parent.mkdir(parents=True, exist_ok=True)
    need = sum({ref: f.size for _, ref, f in p.images}.values()) + sum(f.stat().st_size for _, f in files)
    free = shutil.disk_usage(path.parent).free
    if need > free:  # the engine's sizes are within a few % of the save streams
        raise StackError(f"the bundle needs about {human(need)}, {path.parent} has {human(free)} free — free some "
                         "space or write it elsewhere; nothing was written", exit_code=2)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            out = _TarOut(fh)
            out.add(MARKER, [f"{FORMAT}\n".encode()])
            entries, done = [], {}
            for key, ref, facts in p.images:
                if ref in done:  # two keys, one image: one member
                    entries.append(ImageEntry(key, ref, facts.id, facts.os, facts.architecture, *done[ref]))
                    continue
                member = f"{IMAGES}/{key}.tar"
                what = f"{key}={ref}"
                say(f"{what}: Docker prepares the image before its first byte ({human(facts.size)}: "
                    "about a minute per few GiB)")
                e = out.add(member, store.save(ref), lambda n, w=what, t=facts.size: progress(w, n, t))
                progress(what, e.size, e.size)
                now = store.inspect(ref)
                if now is None or now.id != facts.id:  # re-tagged meanwhile: the stream may be either
                    raise StackError(f"{ref} ({key}) changed while it was being saved (rebuilt or re-tagged?) "
                                     "— nothing was written; retry when it is settled")
                done[ref] = (member, e.size, e.sha256)
                entries.append(ImageEntry(key, ref, facts.id, facts.os, facts.architecture, member, e.size, e.sha256))
            model = {name: out.add(name, _file_chunks(f)) for name, f in files}
            if files:
                progress(f"model folder {model_path.name}", sum(e.size for e in model.values()), 0)
            manifest = Manifest(created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                stack_version=__version__, images=tuple(entries),
                                model_name=model_path.name if files else "", model_files=model,
                                skipped=p.skipped)
            out.add(MANIFEST, [manifest.to_json().encode()])
            out.close()
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # images and a model, no secrets: others may copy it
        os.replace(tmp, path)
    except OSError as exc:  # disk full, I/O error: one line, and no half-written file
        Path(tmp).unlink(missing_ok=True)
        raise StackError(f"writing {path} failed ({exc.strerror or exc}) — nothing was written; free some space "
                         "or write it elsewhere, then retry") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return SaveResult(path, manifest, path.stat().st_size, time.monotonic() - t0)


# -- verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    offset: int  # of its data in the file
    entry: FileEntry


class VerifiedBundle:
    """A bundle ``open_bundle`` accepted, still open: everything loaded comes from this
    open file, re-hashed on the way (the path may be swapped or rewritten meanwhile)."""

    def __init__(self, path: Path, fd: int, manifest: Manifest, members: dict[str, Member]) -> None:
        self.path, self.fd, self.manifest, self.members = path, fd, manifest, members

    def __enter__(self) -> VerifiedBundle:
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def chunks(self, member: str, hold_last: bool = False) -> Iterator[bytes]:
        """The member's bytes from the open file. BundleError if they no longer match the
        manifest; with ``hold_last`` the last chunk is yielded only after they did."""
        m = self.members[member]
        h, pos, end, held = hashlib.sha256(), m.offset, m.offset + m.entry.size, b""
        while pos < end:
            chunk = os.pread(self.fd, min(CHUNK, end - pos), pos)
            if not chunk:
                break
            pos += len(chunk)
            h.update(chunk)
            if held:
                yield held
            held = chunk
            if not hold_last:
                yield held
                held = b""
        if pos != end or h.hexdigest() != m.entry.sha256:
            raise BundleError(self.path, f"{member} changed after the bundle was verified (is something "
                                         "writing to it?)")
        if held:
            yield held


def open_bundle(path: Path, progress: Progress = lambda what, done, total: None) -> VerifiedBundle:
    """Open ``path`` once and check it whole against its manifest; BundleError if unusable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file — check the path (`{cmd('bundle save FILE')}` writes one)") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{path}: is a directory — name a file `{cmd('bundle save FILE')}` wrote")
        if not stat.S_ISREG(st.st_mode):  # a fifo or a device never ends
            raise UsageError(f"{path}: not a regular file — name a file `{cmd('bundle save FILE')}` wrote")
        manifest, members = _check(path, os.fdopen(os.dup(fd), "rb"), st.st_size, progress)
    except BaseException:
        os.close(fd)
        raise
    return VerifiedBundle(path, fd, manifest, members)


def _check(path: Path, fh, size: int, progress: Progress) -> tuple[Manifest, dict[str, Member]]:
    seen: dict[str, Member] = {}
    raw_manifest: bytes | None = None
    count = 0
    with fh:
        try:
            with tarfile.open(fileobj=fh, mode="r:") as tar:
                for info in tar:
                    count += 1
                    if count == 1 and info.name != MARKER:
                        raise BundleError(path, f"is not a bundle made by this stack (it starts with "
                                                f"{info.name!r}, a bundle with {MARKER!r})")
                    if raw_manifest is not None:
                        raise BundleError(path, f"entry {info.name!r} follows {MANIFEST} (the last entry)")
                    if (problem := member_problem(info, size)) is not None:
                        raise BundleError(path, problem)
                    if count > MAX_FILES + 2 * len(BUNDLE_KEYS):
                        raise BundleError(path, f"has more than {MAX_FILES:,} entries")
                    if info.isdir():
                        continue
                    if info.name in seen or (info.name == MARKER and count != 1):
                        raise BundleError(path, f"entry {info.name!r} appears twice")
                    if info.name == MARKER:
                        if tar.extractfile(info).read(256) != f"{FORMAT}\n".encode():
                            raise BundleError(path, f"is not a {FORMAT} bundle (its {MARKER} says otherwise)")
                        continue
                    if info.name == MANIFEST:
                        if info.size > MAX_MANIFEST:
                            raise BundleError(path, f"{MANIFEST} is {human(info.size)}, over its limit "
                                                    f"of {human(MAX_MANIFEST)}")
                        raw_manifest = tar.extractfile(info).read()
                        continue
                    seen[info.name] = Member(info.offset_data, _digest(tar.extractfile(info),
                                                                       lambda n, o=info.offset_data: progress(
                                                                           "verifying", o + n, size)))
                end = tar.offset
        except BundleError:
            raise
        except (tarfile.TarError, EOFError, OSError) as exc:
            if count == 0:
                raise BundleError(path, f"is not a bundle made by this stack (not a tar file: {_short(exc)})") from None
            raise BundleError(path, f"not a readable bundle (truncated or corrupt: {_short(exc)})") from None
        # tarfile stops quietly at a damaged header: what follows the end must be zeros.
        fh.seek(end)
        if any(c.strip(b"\0") for c in iter(lambda: fh.read(CHUNK), b"")):
            raise BundleError(path, f"not a readable bundle (truncated or corrupt: a damaged entry header "
                                    f"at byte {end:,})")
    if count == 0:
        raise BundleError(path, "is not a bundle made by this stack (an empty tar)")
    if raw_manifest is None:
        raise BundleError(path, f"has no {MANIFEST} (truncated, or not a bundle made by this stack)")
    try:
        manifest = parse_manifest(raw_manifest)
    except ValueError as exc:
        raise BundleError(path, str(exc)) from None
    problems = compare(manifest, {n: m.entry for n, m in seen.items()})
    if problems:
        raise BundleError(path, problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return manifest, seen


def _digest(fh, progress: Callable[[int], None]) -> FileEntry:
    h, n = hashlib.sha256(), 0
    while chunk := fh.read(CHUNK):
        h.update(chunk)
        n += len(chunk)
        progress(n)
    return FileEntry(h.hexdigest(), n)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


# -- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    manifest: Manifest
    loaded: tuple[str, ...]    # KEY=ref loaded into Docker
    present: tuple[str, ...]   # KEY=ref already there with the same id
    model_dir: Path | None
    env_updates: dict[str, str]
    seconds: float


def check_model_dir(model_dir: Path) -> None:
    """UsageError when ``model_dir`` exists and is not an empty folder."""
    if model_dir.exists() and not (model_dir.is_dir() and not any(model_dir.iterdir())):
        raise UsageError(f"--model-dir {model_dir}: already exists and is not an empty folder — "
                         "choose a new folder (the bundle never overwrites one)")


def load(bundle: VerifiedBundle, store: ImageStore, *, model_dir: Path | None, env_file: Path,
         env: dict[str, str], models_home: Path,
         progress: Progress = lambda what, done, total: None, say: Say = lambda msg: None) -> LoadResult:
    """Load a verified bundle: images into Docker, the model folder to ``model_dir`` (default
    ``models_home/<its name>``), then the bundle's image references into .env. All or
    nothing (see the module docstring)."""
    t0 = time.monotonic()
    m = bundle.manifest
    wrong = platform_problems(m, *store.platform())
    if wrong:
        raise BundleError(bundle.path, f"built for another platform: {wrong[0]}"
                                       + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""))
    if m.model_name and model_dir is None:
        model_dir = models_home / m.model_name
    if model_dir is not None and not m.model_name:
        raise UsageError(f"{bundle.path.name} holds no model folder — leave out --model-dir")
    if model_dir is not None:
        check_model_dir(model_dir)
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(model_dir.parent).free
        need = sum(e.size for e in m.model_files.values())
        if need > free:
            raise StackError(f"the model folder needs {human(need)}, {model_dir.parent} has {human(free)} free "
                             "— free some space or choose another --model-dir", exit_code=2)
    touched: list[tuple[str, str | None, bool, str]] = []  # (ref, prior id, id existed, new id)
    staged: Path | None = None
    loaded, present = [], []
    try:
        with sigterm_as_interrupt():  # put back, not a silent death
            if model_dir is not None:
                staged = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.", suffix=".partial", dir=model_dir.parent))
                _extract_model(bundle, staged, progress)
            for i in m.images:
                if any(x.ref == i.ref and f"{x.key}={x.ref}" in loaded for x in m.images):
                    loaded.append(f"{i.key}={i.ref}")  # another key's load brought it
                    continue
                before = store.inspect(i.ref)
                if before is not None and before.id == i.id:
                    present.append(f"{i.key}={i.ref}")
                    continue
                touched.append((i.ref, before.id if before else None, store.inspect(i.id) is not None, i.id))
                what, done = f"{i.key}={i.ref}", [0]

                def counted(chunks: Iterator[bytes], what=what, done=done, total=i.size) -> Iterator[bytes]:
                    for c in chunks:
                        done[0] += len(c)
                        progress(what, done[0], total)
                        yield c
                    say(f"{what}: sent; Docker is unpacking it (about as long again)")

                store.load(counted(bundle.chunks(i.member, hold_last=True)))
                after = store.inspect(i.ref)
                if after is None or after.id != i.id:
                    raise StackError(f"after docker load, {i.ref} ({i.key}) is {after.id if after else 'absent'}, "
                                     f"the manifest says {i.id} (was the image rebuilt while the bundle was "
                                     f"written?) — nothing was kept; write the bundle again with "
                                     f"`{cmd('bundle save FILE')}`")
                loaded.append(what)
            if staged is not None:
                os.chmod(staged, 0o755)
                os.replace(staged, model_dir)  # onto a missing or empty folder
                staged = None
    except BaseException as exc:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        if touched:
            say(f"putting back the {len(touched)} image reference(s) this load touched (removing GiBs takes a while)")
        _put_back(store, touched)
        if isinstance(exc, OSError):  # writing the model folder: disk full, permissions
            raise StackError(f"writing the model folder {model_dir} failed ({exc.strerror or exc}) — nothing was "
                             "kept; free some space or choose another --model-dir, then retry") from None
        raise
    updates = env_updates(env, m)
    if updates:
        remember_images(env_file, updates)
    return LoadResult(m, tuple(loaded), tuple(present), model_dir, updates, time.monotonic() - t0)


def _extract_model(bundle: VerifiedBundle, into: Path, progress: Progress) -> None:
    total, done = sum(e.size for e in bundle.manifest.model_files.values()), 0
    for member in sorted(bundle.manifest.model_files):
        dest = into.joinpath(*PurePosixPath(member).parts[1:])
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as out:
            for chunk in bundle.chunks(member):
                out.write(chunk)
                done += len(chunk)
                progress(f"model folder {bundle.manifest.model_name}", done, total)


def _put_back(store: ImageStore, touched: list[tuple[str, str | None, bool, str]]) -> None:
    """Give each reference the load touched its image of before (or none), and drop an
    image the load brought that nothing else names."""
    for ref, prior, id_existed, new_id in reversed(touched):
        with contextlib.suppress(Exception):
            now = store.inspect(ref)
            if prior is None and now is not None:
                store.remove(ref)
            elif prior is not None and (now is None or now.id != prior):
                store.tag(prior, ref)
            if not id_existed and store.inspect(new_id) is not None:
                store.remove(new_id)


def remember_images(env_file: Path, updates: dict[str, str]) -> None:
    """Point .env's image keys at the bundle's references (atomically, 0600)."""
    merged, _ = envfile.merge(envfile.read(env_file) if env_file.exists() else [])
    out = [envfile.assignment(ln.key, updates[ln.key]) if ln.key in updates else ln for ln in merged]
    envfile.validate(envfile.values(out), str(env_file))
    envfile.write_atomic(env_file, envfile.render(out))
