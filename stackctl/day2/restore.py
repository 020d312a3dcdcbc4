"""`invoke restore FILE`: put a backup back, or change nothing.

Order, and why each step is where it is:
1. verify the archive on the host (day2.archive.open_verified: readable to the end,
   manifest, every checksum, no traversal/absolute/link entries, size limits) and
   refuse an archive written by a newer Open WebUI than the current image — before
   any Docker object is touched; the staging streams come from that same open file;
2. ask (unless --yes);
3. preflight: the filesystem Docker keeps volumes on must hold the staged backup and
   a rollback copy of the live data (``space_needed``); else refuse, nothing changed;
4. extract into fresh staging volumes and run SQLite's ``PRAGMA integrity_check``
   on the staged webui.db (and check its alembic revision is one the image knows);
5. stop the services that use the volumes; copy the live data into rollback volumes
   (the live volume mounted read-only) and verify each copy against the live data's
   fingerprint (``volumes.fingerprint``: every path, mode, owner, size and sha256);
6. only then replace the live content with the staged one, and verify it;
7. bring the stack back (``invoke up``'s code path: health, Foundry reconcile).

The invariant: the live data is written only once a verified copy of it exists,
and a scratch volume holding the user's data is deleted only once the live data is
verified — identical to before (nothing done, or put back) or to the backup (done).
If anything fails or is interrupted in 5–7 — an error of any kind, Ctrl-C, SIGTERM,
a killed container — ``settle`` checks the live data against its fingerprint, puts
the rollback copy back where it differs, and verifies that. If that cannot be done,
every copy is kept and the message names the volume holding the user's data and
the command that puts it back. No copy has a time limit; long ones show progress.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from stackctl.config.settings import OPENWEBUI, VOLUME_SERVICE
from stackctl.config.stack import Stack, load_stack
from stackctl.console import Reporter, cmd
from stackctl.day2.archive import (
    EXCLUDED,
    Manifest,
    human,
    open_verified,
    sigterm_as_interrupt,
    split_member,
    volume_stream,
)
from stackctl.day2.backup import live_limits, probe_image
from stackctl.day2.version import ImageVersion, is_newer
from stackctl.docker import compose as composer
from stackctl.docker import engine
from stackctl.docker import volumes as dd
from stackctl.docker.volumes import Fingerprint
from stackctl.errors import StackError

CHECK = r"""
import json, os, sqlite3, sys
path = sys.argv[1]
out = {"integrity": [], "revision": None, "chats": None}
if not os.path.exists(path):
    out["integrity"] = ["webui.db is missing"]
else:
    try:
        con = sqlite3.connect(path)
        out["integrity"] = [r[0] for r in con.execute("PRAGMA integrity_check")]
        for key, sql in (("revision", "SELECT version_num FROM alembic_version"),
                         ("chats", "SELECT count(*) FROM chat")):
            try:
                row = con.execute(sql).fetchone()
                out[key] = row[0] if row else None
            except sqlite3.Error:
                pass
        con.close()
    except sqlite3.Error as exc:
        out["integrity"] = [str(exc)]
print(json.dumps(out))
"""

BLOCK = 4096
MARGIN = 16 << 20  # plus 5%: filesystem overhead the estimate does not see
INTERRUPTED = 130  # the shell's exit code for a command stopped by Ctrl-C

# (a volume on the filesystem new volumes go to, {live volume: kept names}) →
# (its free bytes, {live volume: bytes its data takes}); the injectable seam of the preflight.
Measure = Callable[[str, dict[str, tuple[str, ...]]], tuple[int, dict[str, int]]]


@dataclass(frozen=True)
class Staged:
    integrity: str
    revision: str | None
    chats: int | None


@dataclass(frozen=True)
class RestoreResult:
    path: Path
    manifest: Manifest
    staged: Staged
    image: ImageVersion
    seconds: float


def refuse_if_newer(manifest: Manifest, image: ImageVersion) -> None:
    """StackError when the archive's Open WebUI is newer than the image's. Pure."""
    try:
        newer = is_newer(manifest.openwebui_version, image.version or "")
    except ValueError as exc:
        raise StackError(f"{exc} — refused; nothing was changed") from None
    if newer:
        raise StackError(
            f"the backup was written by Open WebUI {manifest.openwebui_version}, newer than "
            f"{image.version} in {image.image} (its database migrations cannot be undone) — "
            f"set OPENWEBUI_IMAGE to {manifest.openwebui_image or 'that version'} (or newer) in .env, "
            "then retry; nothing was changed")


def staged_verdict(output: str, image: ImageVersion) -> Staged:
    """Parse CHECK's output; StackError unless integrity is ok and the revision is known. Pure."""
    try:
        d = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise StackError(f"the integrity check did not run ({output.strip()[-200:] or 'no output'}) "
                         "— refused; nothing was changed") from None
    result = d.get("integrity") or ["no result"]
    if result != ["ok"]:
        raise StackError(f"webui.db in the backup fails SQLite's integrity check ({'; '.join(map(str, result))[:200]}) "
                         "— refused; nothing was changed")
    rev = d.get("revision")
    if rev and image.revisions and rev not in image.revisions:
        raise StackError(f"webui.db in the backup is at schema revision {rev}, which {image.image} "
                         f"(Open WebUI {image.version}) does not know — it comes from a newer Open WebUI; "
                         "refused; nothing was changed")
    return Staged("ok", rev, d.get("chats"))


# -- preflight: will the copies fit? ----------------------------------------------------------


def staged_bytes(manifest: Manifest, volume: str) -> int:
    """Disk the backup's data for ``volume`` takes once extracted (whole blocks). Pure."""
    names = [n for n in manifest.files if split_member(n)[0] == volume]
    dirs = {PurePosixPath(n).parent for n in names}
    return sum(-(-manifest.files[n].size // BLOCK) * BLOCK for n in names) + BLOCK * len(dirs)


def space_needed(manifest: Manifest, volumes: tuple[str, ...], live_used: dict[str, int]) -> int:
    """Free bytes a restore needs where Docker keeps volumes: per volume the staged data,
    the rollback copy of the live data, and what the staged data outgrows the live data
    by when it replaces it; plus a margin. Pure."""
    need = 0
    for v in volumes:
        staged, live = staged_bytes(manifest, v), live_used.get(v, 0)
        need += staged + live + max(0, staged - live)
    return need + need // 20 + MARGIN


def space_problem(need: int, free: int) -> str | None:
    """Why the restore cannot start for lack of space, or None. Pure."""
    if free >= need:
        return None
    return (f"not enough free disk space for the restore: it needs about {human(need)} for the staged "
            f"backup and a rollback copy of the current data, and the filesystem Docker keeps volumes on "
            f"has {human(free)} free — free some space (`docker system df` shows what Docker holds), "
            "then retry; refused, nothing was changed")


def measure_space(client, image: str, project: str) -> Measure:
    """The real Measure: one throwaway container (live volumes mounted read-only)."""
    def run(space_volume: str, live: dict[str, tuple[str, ...]]) -> tuple[int, dict[str, int]]:
        return dd.measure(client, image, project, space_volume, live)
    return run


# -- the swap: copy, verify, replace, verify; settle on any failure ---------------------------


@dataclass
class Slot:
    """One data volume being restored, and what is known about it so far."""

    volume: str                      # e.g. open-webui-data
    live: str                        # the compose volume
    staging: str
    rollback: str
    keep: tuple[str, ...]            # top-level names left in place (caches)
    before: Fingerprint | None = None  # the live data before anything was written
    staged: Fingerprint | None = None
    copied: bool = False             # the rollback copy was verified equal to ``before``
    written: bool = False            # the live volume has been mounted read-write


class VolumeOps(Protocol):
    def fingerprint(self, volume: str, keep: tuple[str, ...], label: str) -> Fingerprint: ...
    def copy(self, src: str, dst: str, keep: tuple[str, ...], *, replace: bool, label: str,
             total: int) -> None: ...
    def stop_strays(self) -> None: ...


class Services(Protocol):
    def stop(self) -> None: ...
    def start_again(self) -> None: ...


class SwapFailed(StackError):
    """The swap failed; ``keep``: scratch volumes hold the only good copy of some data."""

    def __init__(self, message: str, *, keep: bool, exit_code: int = 1) -> None:
        super().__init__(message, exit_code=exit_code)
        self.keep = keep


def swap(slots: list[Slot], ops: VolumeOps, services: Services, bring_up: Callable[[], object] | None,
         r: Reporter, image: str) -> None:
    """Replace each slot's live data with its staged data, or leave it as it was (SwapFailed)."""
    doing = "reading the staged data"
    try:
        with sigterm_as_interrupt():  # settled, not a silent death
            for s in slots:
                s.staged = ops.fingerprint(s.staging, s.keep, f"reading the staged {s.volume}")
            doing = "stopping the services that use the data"
            services.stop()
            for s in slots:
                doing = f"copying {s.live} to the rollback volume {s.rollback}"
                s.before = ops.fingerprint(s.live, s.keep, f"reading {s.live}")
                r.step(f"copying {s.live} ({s.before.describe()}) to the rollback volume {s.rollback}")
                ops.copy(s.live, s.rollback, s.keep, replace=False, label=f"copying {s.live}",
                         total=s.before.bytes)
                doing = f"verifying the rollback copy of {s.live}"
                copy = ops.fingerprint(s.rollback, s.keep, f"verifying the copy in {s.rollback}")
                if copy != s.before:
                    raise StackError(f"the copy in {s.rollback} does not match {s.live} "
                                     f"({copy.describe()} vs {s.before.describe()})")
                s.copied = True
                r.ok(f"rollback copy verified: {s.before.describe()} in {s.rollback}")
            for s in slots:
                doing = f"replacing the data in {s.live}"
                r.step(f"replacing the data in {s.live} with the backup's")
                s.written = True
                ops.copy(s.staging, s.live, s.keep, replace=True, label=f"writing {s.live}",
                         total=s.staged.bytes)
                doing = f"verifying the restored data in {s.live}"
                now = ops.fingerprint(s.live, s.keep, f"verifying {s.live}")
                if now != s.staged:
                    raise StackError(f"{s.live} does not match the backup after the copy "
                                     f"({now.describe()} vs {s.staged.describe()})")
                r.ok(f"{s.live} now holds the backup's data (verified: {s.staged.describe()})")
            if bring_up is not None:
                doing = "bringing the stack up with the restored data"
                r.step("bringing the stack up")
                bring_up()
    except BaseException as exc:  # every failure, Ctrl-C included, is settled
        raise settle(slots, ops, services, r, image, failure(exc, doing),
                     INTERRUPTED if isinstance(exc, KeyboardInterrupt) else 1) from None


def detail(exc: BaseException) -> str:
    """An exception in a few words, whatever its kind. Pure."""
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted ({exc.args[0] if exc.args else 'Ctrl-C'})"
    text = str(exc).strip() if isinstance(exc, StackError) else f"{type(exc).__name__}: {exc}".strip()
    return text[:400]


def failure(exc: BaseException, doing: str) -> str:
    """'<what was being done> failed (<why>)', or 'interrupted (Ctrl-C) while …'. Pure."""
    if isinstance(exc, KeyboardInterrupt):
        return f"{detail(exc)} while {doing}"
    return f"{doing} failed ({detail(exc)})"


def settle(slots: list[Slot], ops: VolumeOps, services: Services, r: Reporter, image: str,
           why: str, exit_code: int) -> SwapFailed:
    """After a failure at any point of ``swap``: make every live volume verified-identical
    to before (putting the rollback copy back where needed), or keep every copy and say
    where the data is. Ctrl-C and SIGTERM are held off meanwhile."""
    with _shielded(r):
        r.warn(f"{why} — checking the live data")
        lost: dict[str, str] = {}
        put_back: list[Slot] = []
        with suppress(Exception):
            ops.stop_strays()  # a copy still running must not write while the data is put back
        not_stopped = None
        if any(s.written for s in slots):
            try:
                services.stop()
            except Exception as exc:
                not_stopped = f"the services using it could not be stopped ({detail(exc)})"
        for s in slots:
            if s.before is None:
                continue  # failed before its first read: never written, its rollback volume empty
            try:
                now = ops.fingerprint(s.live, s.keep, f"checking {s.live}")
                if now == s.before:
                    continue
                if not s.copied:
                    raise StackError(f"{s.live} changed while the restore was only reading it")
                if not_stopped:
                    raise StackError(not_stopped)
                r.step(f"putting the previous data back into {s.live} from {s.rollback}")
                ops.copy(s.rollback, s.live, s.keep, replace=True, label=f"putting {s.live} back",
                         total=s.before.bytes)
                now = ops.fingerprint(s.live, s.keep, f"verifying {s.live}")
                if now != s.before:
                    raise StackError(f"it does not match the copy taken before ({now.describe()} vs "
                                     f"{s.before.describe()})")
                put_back.append(s)
            except BaseException as exc:  # whatever it was, the copies stay
                lost[s.volume] = detail(exc)
        if lost:
            return SwapFailed(lost_message(why, [s for s in slots if s.volume in lost], lost, image),
                              keep=True, exit_code=exit_code)
        with suppress(Exception):
            services.start_again()
        checked = [s for s in slots if s.before is not None]
        if put_back:
            said = ("the previous data was put back and verified identical to before: "
                    + "; ".join(f"{s.live} {s.before.describe()}" for s in put_back))
        elif checked:
            said = ("nothing was changed: the live data was verified as it was: "
                    + "; ".join(f"{s.live} {s.before.describe()}" for s in checked))
        else:
            said = "nothing was changed: the live data was not touched"
        return SwapFailed(f"{why} — {said}; the backup was not restored", keep=False, exit_code=exit_code)


def lost_message(why: str, slots: list[Slot], reasons: dict[str, str], image: str) -> str:
    """Where the user's data is and how to get it back, when it could not be put back. Pure."""
    parts = []
    for s in slots:
        where = (f"your previous data for {s.live} is in the Docker volume {s.rollback} "
                 f"({s.before.describe() if s.before else '?'}, verified when copied)"
                 if s.copied else f"{s.live} itself was never written by the restore")
        parts.append(f"{s.live}: {reasons[s.volume]}; {where}")
    fixes = [f"`{recovery_command(s, image)}`" for s in slots if s.copied]
    how = (f" To put it back: `{cmd('down')}`, then {' and '.join(fixes)}, then `{cmd('up')}`; "
           "remove the day2-* volumes only after that." if fixes else "")
    scratch = ", ".join(v for s in slots for v in (s.rollback, s.staging))
    return (f"{why}; putting the previous data back FAILED — nothing was deleted. {' / '.join(parts)}."
            f"{how} (kept: {scratch})")


def recovery_command(s: Slot, image: str) -> str:
    """A shell command that puts ``s.rollback`` back into ``s.live`` (services stopped). Pure."""
    spare = "".join(f" ! -name {k}" for k in s.keep)
    return (f"docker run --rm --network none -v {s.rollback}:/from:ro -v {s.live}:/to {image} sh -c "
            f"'find /to -mindepth 1 -maxdepth 1{spare} -exec rm -rf {{}} + && cp -a /from/. /to/'")


@contextmanager
def _shielded(r: Reporter) -> Iterator[None]:
    """Ctrl-C / SIGTERM while settling are said, not obeyed: stopping half-way through
    putting the data back would leave it half-copied."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    said: list[int] = []

    def hold(signum, frame):
        if not said:
            said.append(signum)
            r.warn("still putting the data back — it stops by itself when done; "
                   "stopping it now would leave the data half-copied")

    old = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class DockerOps:
    """VolumeOps in throwaway containers of the Open WebUI image, progress on the reporter."""

    def __init__(self, client, image: str, project: str, r: Reporter) -> None:
        self.client, self.image, self.project, self.r = client, image, project, r

    def fingerprint(self, volume: str, keep: tuple[str, ...], label: str) -> Fingerprint:
        with self.r.status(label) as st:
            return dd.fingerprint(self.client, self.image, self.project, volume, keep,
                                  progress=lambda text: st.update(f"{label}: {text} hashed"))

    def copy(self, src: str, dst: str, keep: tuple[str, ...], *, replace: bool, label: str,
             total: int) -> None:
        def show(text: str, st) -> None:
            try:
                st.update(f"{label}: {human(max(0, int(text)) * 1024)} of about {human(total)} written")
            except ValueError:
                st.update(f"{label}: {text}")

        with self.r.status(label) as st:
            dd.copy(self.client, self.image, self.project, src, dst, keep, replace=replace,
                    progress=lambda kib: show(kib, st))

    def stop_strays(self) -> None:
        filters = {"label": [f"{dd.PROJECT_LABEL}={self.project}", *(f"{k}={v}" for k, v in dd.THROWAWAY.items())]}
        for ctr in self.client.containers.list(filters=filters):
            with suppress(Exception):
                ctr.remove(force=True)


class ComposeServices:
    """Services: the compose services that use the restored volumes."""

    def __init__(self, client, compose, stack: Stack, names: tuple[str, ...]) -> None:
        self.client, self.compose, self.stack, self.names = client, compose, stack, names
        states = engine.services(client, stack.project)
        self.running = tuple(s for s in names if states.get(s) and states[s].state == "running")

    def stop(self) -> None:
        present = tuple(s for s in self.names if s in engine.services(self.client, self.stack.project))
        if present:
            composer.run(self.compose, self.stack, "stop", *present, capture=True)

    def start_again(self) -> None:
        if self.running:
            composer.run(self.compose, self.stack, "start", *self.running, capture=True, check=False)


# -- the command ------------------------------------------------------------------------------


def restore(path: Path, *, confirm: Callable[[Manifest], bool],
            bring_up: Callable[[Stack], object] | None = None, reporter: Reporter | None = None,
            stack: Stack | None = None, client=None, compose=None,
            measure: Measure | None = None) -> RestoreResult:
    r = reporter or Reporter.quiet()
    t0 = time.monotonic()
    stack = stack or load_stack()
    client = client or engine.client()
    r.step(f"verifying {path.name}")
    with open_verified(path, live_limits(stack, client)) as archive:  # one open file: verified, then streamed
        manifest = archive.manifest
        r.ok(f"archive verified: {len(manifest.files)} files, {manifest.total_bytes:,} bytes, "
             f"Open WebUI {manifest.openwebui_version}, taken {manifest.created_at}")
        compose = compose or composer.find()
        image = probe_image(client, stack.env[OPENWEBUI.image_key], stack.project)
        refuse_if_newer(manifest, image)
        if not confirm(manifest):
            raise StackError("nothing restored (not confirmed)")
        slots: list[Slot] = []
        keep = False  # True while a scratch volume may hold the only good copy of some data
        try:
            for v in manifest.volumes:
                slots.append(Slot(v, dd.volume_name(stack.project, v),
                                  dd.scratch_volume(client, stack.project, "staging"), "", EXCLUDED.get(v, ())))
            preflight(manifest, slots, {s.live for s in slots if dd.volume_exists(client, s.live)},
                      measure or measure_space(client, image.image, stack.project), r)
            staged = _stage(archive, slots, image, stack, client, r)
            for s in slots:
                s.rollback = dd.scratch_volume(client, stack.project, "rollback", {"org.foundry-chat.rollback-of": s.live})
                dd.ensure_compose_volume(client, stack.project, s.volume)
            services = ComposeServices(client, compose, stack, tuple(VOLUME_SERVICE[s.volume] for s in slots))
            keep = True
            swap(slots, DockerOps(client, stack.env[OPENWEBUI.image_key], stack.project, r), services,
                 (lambda: bring_up(stack)) if bring_up is not None else None, r, stack.env[OPENWEBUI.image_key])
            keep = False
        except SwapFailed as err:
            keep = err.keep
            raise
        except StackError:
            raise
        except BaseException as exc:  # before the swap, the live data was only read
            if keep:
                raise
            interrupted = isinstance(exc, KeyboardInterrupt)
            raise StackError(f"{failure(exc, 'preparing the restore')} — the live data was not touched; "
                             "nothing was changed", exit_code=INTERRUPTED if interrupted else 1) from None
        finally:
            scratch = [v for s in slots for v in (s.staging, s.rollback) if v]
            if keep:
                r.warn(f"kept the volumes holding copies of your data: {', '.join(scratch)}")
            else:
                for name in scratch:
                    with suppress(Exception):
                        dd.remove_volume(client, name)
    return RestoreResult(path, manifest, staged, image, time.monotonic() - t0)


def preflight(manifest: Manifest, slots: list[Slot], existing: set[str], measure: Measure,
              r: Reporter) -> None:
    """StackError (exit 2) unless the staged backup and the rollback copies fit."""
    free, used = measure(slots[0].staging, {s.live: s.keep for s in slots if s.live in existing})
    need = space_needed(manifest, tuple(s.volume for s in slots),
                        {s.volume: used.get(s.live, 0) for s in slots})
    problem = space_problem(need, free)
    if problem:
        raise StackError(problem, exit_code=2)
    r.ok(f"free space: {human(free)}; the restore needs about {human(need)}")


def _stage(archive, slots: list[Slot], image: ImageVersion, stack: Stack, client, r: Reporter) -> Staged:
    r.step("extracting into staging volumes")
    for s in slots:
        dd.import_tar(client, image.image, stack.project, {s.staging: f"/{s.volume}"},
                      volume_stream(archive, s.volume))
    webui = next((s.staging for s in slots if s.volume == OPENWEBUI.volume), None)
    if webui is None:
        raise StackError(f"the backup holds no {OPENWEBUI.volume} — refused; nothing was changed")
    code, out = dd.run_script(client, image.image, stack.project, "check",
                              ["python3", "-c", CHECK, "/s/webui.db"], {webui: "/s"})
    staged = staged_verdict(out if code == 0 else f"exit {code}: {out}", image)
    r.ok(f"staged webui.db passes the integrity check (schema {staged.revision}, {staged.chats} chats)")
    return staged
