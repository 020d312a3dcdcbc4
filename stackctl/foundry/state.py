"""The embedded server's state file: what runs, where, and with which model.

Invariants:
- The server process writes the file (atomically) only once it is ready, and
  removes it on a clean exit; so a file whose process is gone is *stale* and is
  removed by whoever finds it (``read_live``).
- The process is identified by pid + start time (``create_time``, recorded by the
  server itself) + a command line running the server module, through psutil on
  every platform. A pid that now belongs to another process (reused after a crash
  or a reboot) is a stale state, never a server: nothing here or in lifecycle.py
  ever signals it.
- The file is JSON with a ``version``; unknown versions and garbage read as
  "no state" (and are removed as stale), never as a crash.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import psutil

from stackctl.config.stack import private_dir
from stackctl.foundry.paths import FoundryPaths
from stackctl.lock import clock, same_process, start_time

STATE_VERSION = 1
SERVER_MODULE = "stackctl.foundry.server"  # what the server process runs (python -m …)


@dataclass(frozen=True)
class ServerState:
    """A running embedded server, as recorded in ``<state_dir>/foundry/server.json``.

    ``root_url`` is the loopback URL; ``urls`` every bound URL (loopback first,
    then e.g. the Docker bridge gateway). ``chat_base_url`` is the OpenAI base
    URL to chat with ``model_id`` (``…/catalogs/local/v1`` for a local model).
    """

    pid: int
    port: int
    root_url: str
    urls: tuple[str, ...]
    model_id: str
    model_alias: str
    model_source: str  # "catalog" | "local"
    chat_base_url: str
    openai_base_urls: tuple[str, ...]
    log_path: str
    started_at: str  # ISO 8601, UTC
    state_dir: str  # the stack state dir (STACK_STATE_DIR) this server belongs to
    model_path: str = ""
    create_time: float | None = None  # the server process's start time (psutil); None: unverifiable
    boot_time: float | None = None  # the boot time create_time was read against (lock.same_process)
    version: int = field(default=STATE_VERSION)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ServerState:
        """Parse the file's text; ValueError when it is not a state of this version."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not JSON: {err}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError("unknown state file version")
        names = {f.name for f in fields(cls)}
        try:
            kwargs = {k: v for k, v in data.items() if k in names}
            kwargs["urls"] = tuple(kwargs["urls"])
            kwargs["openai_base_urls"] = tuple(kwargs["openai_base_urls"])
            state = cls(**kwargs)
        except (KeyError, TypeError) as err:
            raise ValueError(f"missing or bad field: {err}") from None
        if not isinstance(state.pid, int) or state.pid <= 0:
            raise ValueError("bad pid")
        return state


def write(paths: FoundryPaths, state: ServerState) -> None:
    """Write the state file atomically (readers never see half a file)."""
    private_dir(paths.root)
    fd, tmp = tempfile.mkstemp(prefix=".server.", dir=paths.root)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(state.to_json())
        os.replace(tmp, paths.state_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(paths: FoundryPaths) -> ServerState | None:
    """The recorded state, or None when there is no (readable) file. No liveness check."""
    try:
        text = paths.state_file.read_text()
    except FileNotFoundError:
        return None
    try:
        return ServerState.from_json(text)
    except ValueError:
        return None


def read_live(paths: FoundryPaths) -> tuple[ServerState | None, ServerState | None]:
    """(live state, stale state removed). A gone or impostor process's or an unreadable file is removed."""
    found = check(paths)
    return found.live, found.stale


@dataclass(frozen=True)
class Found:
    """What the state file names: ``live`` (its process verified), or ``stale`` (removed
    just now) with ``why`` in words; ``process`` is the verified server process."""

    live: ServerState | None = None
    stale: ServerState | None = None
    why: str = ""
    process: psutil.Process | None = None
    gone: bool = False  # stale because its process exited (not a reused or unverifiable pid)


def check(paths: FoundryPaths) -> Found:
    """Read the state file and verify its process (pid + start time + command line)."""
    if not paths.state_file.exists():
        return Found()
    state = read(paths)
    if state is None:
        remove(paths)
        return Found()
    proc, why = server_process(state)
    if proc is not None:
        return Found(live=state, process=proc)
    remove(paths, expected_pid=state.pid)
    return Found(stale=state, why=why, gone=start_time(state.pid) is None)


def server_process(state: ServerState) -> tuple[psutil.Process | None, str]:
    """The live server process ``state`` names, or (None, why the state is stale)."""
    if state.create_time is None:
        return None, f"pid {state.pid} cannot be verified (the state file has no start time)"
    proc = same_process(state.pid, state.create_time, state.boot_time)
    if proc is None:
        now = start_time(state.pid)
        if now is None:
            return None, f"pid {state.pid} is gone"
        return None, (f"pid {state.pid} now belongs to another process (started {clock(now)}, "
                      f"the server started {clock(state.create_time)})")
    try:
        argv = proc.cmdline()
    except psutil.AccessDenied:  # another user's process (macOS hides their argv): start time matched
        return proc, ""
    except psutil.NoSuchProcess:
        return None, f"pid {state.pid} is gone"
    if SERVER_MODULE not in argv:
        return None, f"pid {state.pid} runs `{' '.join(argv)[:80]}`, not the embedded server"
    return proc, ""


def remove(paths: FoundryPaths, *, expected_pid: int | None = None) -> None:
    """Remove the state file; with ``expected_pid`` only if it still names that pid."""
    if expected_pid is not None:
        current = read(paths)
        if current is not None and current.pid != expected_pid:
            return
    paths.state_file.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a running (not zombie) process."""
    return pid > 0 and start_time(pid) is not None
