"""Docker adapter for backup/restore/upgrade: volumes and throwaway containers.

Volumes are read and written through containers that are created but never
started (``get_archive`` / ``put_archive`` work on them and keep uid/gid/mode);
scripts (integrity check, copy, fingerprint, version probe) run in throwaway
containers of the Open WebUI image with no network. Every throwaway object is
named with the project prefix and labelled, and removed when done.

Invariants of the volume operations restore relies on:
- a source volume is mounted read-only: copying from the live data cannot change it;
- a script has no time limit (a copy of a large volume takes as long as it takes);
  its ``progress:`` lines are passed on while it runs, and the container is removed
  — killed, if still running — however the wait ends (Ctrl-C included);
- ``fingerprint`` covers every entry's path, type, mode, owner, size, link target
  and every file's sha256 (mtimes and hard links are not compared): two volumes
  with equal fingerprints hold the same data.
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import docker
import docker.errors
import requests.exceptions

from stackctl.errors import StackError

THROWAWAY = {"org.foundry-chat.throwaway": "1"}
PROJECT_LABEL = "org.foundry-chat.project"
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_VOLUME = "com.docker.compose.volume"
POLL_S = 1.0  # how often a running script's progress is read (its wait has no limit)


def volume_name(project: str, volume: str) -> str:
    """Compose (v1 and v2) names a project's volume ``<project>_<volume>``."""
    return f"{project}_{volume}"


def volume_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.volumes.get(name)
        return True
    except docker.errors.NotFound:
        return False


def ensure_compose_volume(client: docker.DockerClient, project: str, volume: str) -> str:
    """The project's volume, created with compose's labels if missing (compose adopts it)."""
    name = volume_name(project, volume)
    if not volume_exists(client, name):
        client.volumes.create(name, labels={COMPOSE_PROJECT: project, COMPOSE_VOLUME: volume})
    return name


def scratch_volume(client: docker.DockerClient, project: str, purpose: str,
                   labels: dict[str, str] | None = None) -> str:
    name = f"{project}_day2-{purpose}-{secrets.token_hex(4)}"
    client.volumes.create(name, labels={**THROWAWAY, PROJECT_LABEL: project, **(labels or {})})
    return name


def remove_volume(client: docker.DockerClient, name: str) -> None:
    with suppress(docker.errors.NotFound):
        client.volumes.get(name).remove(force=True)


def _name(project: str, purpose: str) -> str:
    return f"{project}-day2-{purpose}-{secrets.token_hex(4)}"


@contextmanager
def _created(client, image: str, project: str, purpose: str, mounts: dict[str, str],
             read_only: bool | Collection[str] = False, argv: list[str] | None = None):
    """A created (not started) container with ``mounts`` {volume: path}; removed (killed
    if running) on exit. ``read_only``: True for every mount, or the volumes to mount ro."""
    ro = set(mounts) if read_only is True else set(read_only or ())
    ctr = client.containers.create(
        image, entrypoint=(argv or ["true"])[:1], command=(argv or ["true"])[1:],
        name=_name(project, purpose), labels={**THROWAWAY, PROJECT_LABEL: project}, network_disabled=True,
        volumes={v: {"bind": p, "mode": "ro" if v in ro else "rw"} for v, p in mounts.items()},
    )
    try:
        yield ctr
    finally:
        with suppress(docker.errors.NotFound):
            ctr.remove(force=True)


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.it = iter(chunks)
        self.rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self.rest:
            try:
                self.rest = next(self.it)
            except StopIteration:
                return 0
        n = min(len(b), len(self.rest))
        b[:n], self.rest = self.rest[:n], self.rest[n:]
        return n


@contextmanager
def export_volume(client, image: str, project: str, volume: str) -> Iterator[tarfile.TarFile]:
    """The volume's content as a streaming tar (names relative to its root)."""
    with _created(client, image, project, "export", {volume: "/v"}, read_only=True) as ctr:
        chunks, _ = ctr.get_archive("/v/.")
        with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks), 1 << 20), mode="r|") as tar:
            yield tar


def import_tar(client, image: str, project: str, mounts: dict[str, str], chunks: Iterable[bytes]) -> None:
    """Extract a tar stream at ``/`` of a container with ``mounts`` (the engine keeps ownership)."""
    with _created(client, image, project, "import", mounts) as ctr:
        if not ctr.put_archive("/", chunks):
            raise StackError("the Docker Engine refused to write the backup into a staging volume")


Progress = Callable[[str], None]


def run_script(client, image: str, project: str, purpose: str, argv: list[str],
               mounts: dict[str, str], timeout: float | None = None, *,
               read_only: Collection[str] = (), progress: Progress | None = None) -> tuple[int, str]:
    """Run ``argv`` in a throwaway container; (exit code, combined output).

    No time limit unless ``timeout`` is given (then StackError past it). The last
    ``progress: <text>`` line the script printed goes to ``progress`` while it runs.
    However this ends — error, timeout, KeyboardInterrupt — the container is removed,
    killing the script if it still runs.
    """
    with _created(client, image, project, purpose, mounts, read_only, argv=argv) as ctr:
        ctr.start()
        code = _wait(ctr, progress, timeout)
        return code, ctr.logs(stdout=True, stderr=True).decode(errors="replace")


def _wait(ctr, progress: Progress | None, timeout: float | None) -> int:
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    shown = ""
    while True:
        try:
            return ctr.wait(timeout=POLL_S).get("StatusCode", 1)
        # The poll timed out: docker-py reports it as a ConnectionError or, under load, a
        # ReadTimeout (seen: a restore's put-back said FAILED while its copy still ran).
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
            ctr.reload()  # the engine answers (else this raises): the poll timed out
        if deadline is not None and time.monotonic() > deadline:
            raise StackError(f"{ctr.name} was still running after {timeout:.0f}s; stopped")
        if progress is not None:
            tail = ctr.logs(stdout=True, stderr=True, tail=20).decode(errors="replace")
            last = last_progress(tail)
            if last and last != shown:
                shown = last
                progress(last)


def last_progress(output: str) -> str | None:
    """The text of the last ``progress: …`` line in ``output``. Pure."""
    lines = [ln[len("progress:"):].strip() for ln in output.splitlines() if ln.startswith("progress:")]
    return lines[-1] if lines else None


# -- copy, fingerprint, measure: the scripts restore's swap is made of ----------------------------

# argv: mode (copy|replace) src dst [kept top-level names...]. ``replace`` first removes
# every entry of dst but the kept ones. cp -a keeps owners, modes, links and sparseness;
# the volume root takes src's owner and mode. Any failure exits non-zero (set -e, no
# pipelines). While it copies, a ticker prints the KiB written so far (apparent sizes).
COPY = r"""
set -eu
mode="$1"; src="$2"; dst="$3"; shift 3
keep=" $* "
kept() { case "$keep" in *" $1 "*) return 0 ;; esac; return 1; }
kib() { du -sk --apparent-size "$dst" 2>/dev/null | cut -f1; }
if [ "$mode" = replace ]; then
  echo "progress: removing the old data"
  for e in "$dst"/* "$dst"/.[!.]* "$dst"/..?*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    kept "${e##*/}" && continue
    rm -rf "$e"
  done
fi
base="$(kib)"
( while sleep 2 >/dev/null 2>&1; do now="$(kib)"; echo "progress: $(( ${now:-0} - ${base:-0} ))"; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT
for e in "$src"/* "$src"/.[!.]* "$src"/..?*; do
  [ -e "$e" ] || [ -L "$e" ] || continue
  kept "${e##*/}" && continue
  cp -a "$e" "$dst"/
done
chown "$(stat -c %u:%g "$src")" "$dst"
chmod "$(stat -c %a "$src")" "$dst"
sync
kill $ticker 2>/dev/null || true
echo copied
"""

# argv: root [kept top-level names...]. One JSON line: counts, bytes and a sha256 over
# every entry (path, type, mode, uid, gid, size, link target, content sha256), in a
# fixed order; the root's own mode and owner included.
FINGERPRINT = r"""
import hashlib, json, os, stat, sys, time
root = os.fsencode(sys.argv[1])
keep = {os.fsencode(k) for k in sys.argv[2:]}
total = hashlib.sha256()
n = {"files": 0, "dirs": 0, "other": 0, "bytes": 0}
tick = time.monotonic()

def entry(rel, st, extra=b""):
    total.update(b"\0".join([rel, b"%o" % stat.S_IFMT(st.st_mode), b"%o" % stat.S_IMODE(st.st_mode),
                             b"%d:%d" % (st.st_uid, st.st_gid), extra]) + b"\n")

entry(b".", os.lstat(root))
todo = [(root, b"")]
while todo:
    path, rel = todo.pop()
    names = sorted(os.listdir(path))
    subdirs = []
    for name in names:
        if not rel and name in keep:
            continue
        p, r = os.path.join(path, name), (rel + b"/" + name if rel else name)
        st = os.lstat(p)
        if stat.S_ISDIR(st.st_mode):
            entry(r, st)
            n["dirs"] += 1
            subdirs.append((p, r))
        elif stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
                    n["bytes"] += len(chunk)
                    if time.monotonic() - tick > 2:
                        tick = time.monotonic()
                        print(f"progress: {n['files']} files, {n['bytes']} bytes", flush=True)
            entry(r, st, b"%d %s" % (st.st_size, h.hexdigest().encode()))
            n["files"] += 1
        else:
            entry(r, st, os.readlink(p) if stat.S_ISLNK(st.st_mode) else b"")
            n["other"] += 1
    todo.extend(reversed(subdirs))
print(json.dumps({**n, "sha256": total.hexdigest()}))
"""

# argv: a path on the filesystem new volumes go to, then live volume roots with their
# kept names as "root:name,name". One JSON line: free bytes there, and per live root
# the bytes its data occupies (allocated blocks; kept entries left out).
MEASURE = r"""
import json, os, sys
st = os.statvfs(sys.argv[1])
out = {"free": st.f_bavail * st.f_frsize, "used": {}}
for arg in sys.argv[2:]:
    root, _, kept = arg.partition(":")
    keep = set(filter(None, kept.split(",")))
    used = 0
    for dirpath, dirs, files in os.walk(root):
        if dirpath == root:
            dirs[:] = [d for d in dirs if d not in keep]
            files = [f for f in files if f not in keep]
        for name in dirs + files:
            try:
                used += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    out["used"][root] = used
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Fingerprint:
    """What ``FINGERPRINT`` says of a volume: equal fingerprints, same data."""

    files: int
    dirs: int
    other: int
    bytes: int
    sha256: str

    def describe(self) -> str:
        return f"{self.files:,} files, {self.bytes:,} bytes"


def parse_fingerprint(output: str) -> Fingerprint | None:
    """The fingerprint in FINGERPRINT's output (its last line), or None. Pure."""
    try:
        d = json.loads(output.strip().splitlines()[-1])
        return Fingerprint(int(d["files"]), int(d["dirs"]), int(d["other"]), int(d["bytes"]), str(d["sha256"]))
    except (ValueError, IndexError, KeyError, TypeError):
        return None


def why_failed(code: int, output: str) -> str:
    """A script's failure in a few words. Pure."""
    if code == 137:
        return "its container was killed (exit 137)"
    lines = [ln for ln in output.strip().splitlines() if not ln.startswith("progress:")]
    return f"exit {code}: {' | '.join(lines[-3:])[-300:] or 'no output'}"


def fingerprint(client, image: str, project: str, volume: str, keep: Iterable[str] = (),
                progress: Progress | None = None) -> Fingerprint:
    """The volume's fingerprint (mounted read-only; top-level ``keep`` names left out)."""
    code, out = run_script(client, image, project, "fingerprint",
                           ["python3", "-c", FINGERPRINT, "/v", *keep], {volume: "/v"},
                           read_only=(volume,), progress=progress)
    return fingerprint_verdict(code, out, volume)


def fingerprint_verdict(code: int, output: str, volume: str) -> Fingerprint:
    """The fingerprint FINGERPRINT printed, or StackError saying why there is none. Pure."""
    fp = parse_fingerprint(output) if code == 0 else None
    if fp is None:
        raise StackError(f"reading volume {volume} failed ({why_failed(code, output)})")
    return fp


def copy(client, image: str, project: str, src: str, dst: str, keep: Iterable[str] = (), *,
         replace: bool = False, progress: Progress | None = None) -> None:
    """Copy ``src``'s content (top-level ``keep`` names left out) into ``dst``; with
    ``replace``, ``dst``'s own entries (but the kept ones) are removed first. ``src``
    is mounted read-only. StackError saying why if the copy did not complete."""
    code, out = run_script(client, image, project, "replace" if replace else "copy",
                           ["sh", "-c", COPY, "sh", "replace" if replace else "copy", "/from", "/to", *keep],
                           {src: "/from", dst: "/to"}, read_only=(src,), progress=progress)
    copy_verdict(code, out, src, dst)


def copy_verdict(code: int, output: str, src: str, dst: str) -> None:
    """StackError unless COPY ran to its end. Pure."""
    said = [ln for ln in output.splitlines() if not ln.startswith("progress:")]
    if code != 0 or said[-1:] != ["copied"]:
        raise StackError(why_failed(code, output) if code != 0 else
                         f"copying {src} into {dst} stopped before its end ({why_failed(code, output)})")


def measure(client, image: str, project: str, space_volume: str,
            live: dict[str, tuple[str, ...]]) -> tuple[int, dict[str, int]]:
    """(free bytes on ``space_volume``'s filesystem, {live volume: bytes its data takes}),
    the live volumes mounted read-only, their top-level kept names left out."""
    mounts = {space_volume: "/space"} | {v: f"/live/{i}" for i, v in enumerate(live)}
    args = [f"/live/{i}:{','.join(keep)}" for i, keep in enumerate(live.values())]
    code, out = run_script(client, image, project, "measure", ["python3", "-c", MEASURE, "/space", *args],
                           mounts, read_only=tuple(live))
    try:
        d = json.loads(out.strip().splitlines()[-1])
        used = {v: int(d["used"][f"/live/{i}"]) for i, v in enumerate(live)}
        return int(d["free"]), used
    except (ValueError, IndexError, KeyError, TypeError):
        raise StackError(f"measuring free space and the live data failed ({why_failed(code, out)})") from None
