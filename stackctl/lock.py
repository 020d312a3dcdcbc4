"""One stack-wide lock for the commands that change the stack, and process identity.

Invariants:
- ``up``, ``down``, ``backup``, ``restore``, ``upgrade`` and the embedded server's
  start/stop run one at a time per state dir. A second one refuses at once, in one
  line naming the first (command, pid, start time). Read-only commands (status,
  doctor, smoke, logs) never take the lock.
- The lock is an OS advisory lock (flock on POSIX, msvcrt on Windows) on
  ``<state_dir>/stack.lock``: the OS drops it when its holder dies, however it dies,
  so a crash never wedges the stack. Children never inherit it (Python opens files
  non-inheritable), so the detached Foundry server does not keep it.
- The file holds the holder's record (pid, process start time, command, when). It
  is emptied on release, so a record found by the next taker means the holder died
  holding the lock: the taker says so (``Lock.took_over``).
- Re-entrant within one process: ``restore`` → ``up`` → ``foundry.serve`` take it once.
- A process is identified by pid + start time (psutil), never by pid alone: pids are
  reused after a crash or a reboot.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import psutil

from stackctl.config.stack import private_dir
from stackctl.console import cmd
from stackctl.errors import StackError

LOCK_NAME = "stack.lock"
# Start times are exact to 10 ms (Linux clock ticks; macOS and Windows are finer).
START_TIME_SLACK_S = 0.02
# Linux (and the BSDs) derive a start time from the boot time, which moves when the wall clock
# is stepped or slewed: there the identity is the start time since boot, as psutil's own
# pid-reuse guard does; macOS and Windows record a fixed wall-clock start.
_BOOT_RELATIVE = sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd"))
_WIN_LOCK_OFFSET = 1 << 20  # msvcrt locks a byte range readers would trip over: lock one far past the record


# -- process identity -------------------------------------------------------------


def start_time(pid: int) -> float | None:
    """The process's start time (epoch seconds), or None when no such (live) process."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.Error, ValueError):  # gone, or unreadable (AccessDenied): not verifiable, never ours
        return None


def boot_time() -> float:
    """The boot time psutil adds to start times (record it beside one: see same_process)."""
    return psutil.boot_time()


def same_process(pid: int, created: float | None, boot: float | None = None) -> psutil.Process | None:
    """The live process ``pid`` if it is the one that started at ``created`` (read when the
    boot time was ``boot``); None when it is gone, a zombie, or the pid now belongs to a
    process started at another time."""
    if created is None or pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        now = proc.create_time()
        if boot is not None and _BOOT_RELATIVE:
            now, created = now - psutil.boot_time(), created - boot
        if abs(now - created) > START_TIME_SLACK_S:
            return None
        return proc
    except (psutil.Error, ValueError):  # gone, or unreadable (AccessDenied): not verifiable, never ours
        return None


def owner(proc: psutil.Process) -> str | None:
    """The process's user name when it is not ours, else None (ours, or unknowable)."""
    try:
        if hasattr(os, "getuid"):
            uid = proc.uids().real
            if uid == os.getuid():
                return None
            try:
                import pwd

                return pwd.getpwuid(uid).pw_name
            except KeyError:
                return f"uid {uid}"
        name = proc.username()
        return None if name.lower() == psutil.Process().username().lower() else name
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        return None


def clock(epoch: float) -> str:
    """HH:MM:SS local time; with the date when it is not today."""
    when = datetime.fromtimestamp(epoch)
    return when.strftime("%H:%M:%S" if when.date() == datetime.now().date() else "%Y-%m-%d %H:%M:%S")


# -- the lock -------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) the lock, as written in the lock file."""

    pid: int
    created: float  # the holder process's start time (identity with pid)
    command: str  # e.g. "invoke up"
    since: float  # when it took the lock (epoch seconds)
    boot: float | None = None  # the boot time its start time was read against

    def describe(self) -> str:
        return f"`{self.command}` (pid {self.pid}, started {clock(self.since)})"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(pid=int(data["pid"]), created=float(data["created"]),
                       command=str(data["command"]), since=float(data["since"]),
                       boot=float(data["boot"]) if data.get("boot") is not None else None)
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Lock:
    path: Path
    holder: Holder
    took_over: Holder | None = None  # a dead holder's record found on taking the lock


_held: dict[Path, list] = {}  # lock path -> [file, depth, Lock], this process only
_guard = threading.Lock()


def lock_path(state_dir: Path) -> Path:
    return Path(state_dir).resolve() / LOCK_NAME


def refusal(path: Path, holder: Holder | None) -> str:
    if holder is None:
        return (f"another stack command holds the stack lock {path} right now — wait for it to finish, "
                f"then retry (`{cmd('status')}` shows the stack meanwhile)")
    if same_process(holder.pid, holder.created, holder.boot) is None:
        return (f"the stack lock {path} is held by a process that outlived {holder.describe()} — "
                f"find it with `lsof {path}` and stop it, then retry")
    return (f"{holder.describe()} holds the stack lock — wait for it to finish, or stop it "
            f"(Ctrl-C in its terminal, or `kill {holder.pid}`), then retry")


@contextlib.contextmanager
def stack_lock(state_dir: Path, command: str, *, on_note: Callable[[str], None] = lambda note: None) -> Iterator[Lock]:
    """Hold the stack lock of ``state_dir`` for the block; StackError naming the holder
    if another process has it. ``on_note`` hears that a dead holder's lock was taken over."""
    path = lock_path(state_dir)
    with _guard:
        entry = _held.get(path)
        if entry is not None:
            entry[1] += 1
    if entry is not None:  # this process holds it already (an outer command)
        try:
            yield entry[2]
        finally:
            with _guard:
                entry[1] -= 1
        return
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:  # e.g. made by `sudo invoke up`: root's now
        raise StackError(f"cannot open the stack lock {path}: {err.strerror} — if a command ran with sudo, give "
                         f"the folder back (`sudo chown -R $USER {path.parent}`), then retry") from None
    fh = _acquire(path, fd)
    try:
        previous = Holder.parse(fh.read())
        me = Holder(pid=os.getpid(), created=start_time(os.getpid()) or 0.0, command=command,
                    since=datetime.now().timestamp(), boot=boot_time())
        _write(fh, json.dumps(asdict(me)))
        lock = Lock(path=path, holder=me, took_over=previous)
        if previous is not None:
            on_note(f"took over the stack lock from {previous.describe()}, which ended without releasing it")
        with _guard:
            _held[path] = [fh, 1, lock]
        try:
            yield lock
        finally:
            with _guard:
                del _held[path]
            _write(fh, "")  # released cleanly: the next taker finds no record
    finally:
        _release(fh)
        fh.close()


def locked(command: str):
    """Decorator for a task: run it holding the stack lock, as ``invoke <command>``.

    The state dir comes from the project's settings (.env, or the defaults before the
    first ``up``), read when the task runs; a take-over note is printed as a warning."""

    def wrap(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            from stackctl.config.stack import state_dir_of
            from stackctl.console import Reporter

            with stack_lock(state_dir_of(), f"invoke {command}", on_note=Reporter().warn):
                return fn(*args, **kwargs)

        return wrapper

    return wrap


# -- OS locking ------------------------------------------------------------------------


def _acquire(path: Path, fd: int):
    fh = os.fdopen(fd, "r+", encoding="utf-8")
    try:
        if sys.platform == "win32":  # pragma: no cover - Windows only
            import msvcrt

            fh.seek(_WIN_LOCK_OFFSET)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by another process (BlockingIOError / PermissionError)
        fh.seek(0)
        holder = Holder.parse(fh.read())
        fh.close()
        raise StackError(refusal(path, holder)) from None
    except BaseException:
        fh.close()
        raise
    fh.seek(0)
    return fh


def _write(fh, text: str) -> None:
    fh.seek(0)
    fh.truncate()
    fh.write(text)
    fh.flush()


def _release(fh) -> None:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import msvcrt

        fh.seek(_WIN_LOCK_OFFSET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
    # POSIX: closing the file drops the flock.
