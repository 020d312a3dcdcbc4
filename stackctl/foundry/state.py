"""The embedded server's state file: what runs, where, and with which model.

Invariants:
- The server process writes the file (atomically) only once it is ready, and
  removes it on a clean exit; so a file whose pid is dead (or, on Linux, now
  belongs to another program) is *stale* and is removed by whoever finds it
  (``read_live``).
- The file is JSON with a ``version``; unknown versions and garbage read as
  "no state" (and are removed as stale), never as a crash.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from stackctl.config.stack import private_dir
from stackctl.foundry.paths import FoundryPaths

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
    version: int = field(default=STATE_VERSION)

    @property
    def model_ids(self) -> tuple[str, ...]:
        return (self.model_id,)

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
    """(live state, stale state removed). A dead pid's or unreadable file is removed."""
    if not paths.state_file.exists():
        return None, None
    state = read(paths)
    if state is not None and pid_alive(state.pid) and is_server_process(state.pid):
        return state, None
    remove(paths, expected_pid=state.pid if state else None)
    return None, state


def remove(paths: FoundryPaths, *, expected_pid: int | None = None) -> None:
    """Remove the state file; with ``expected_pid`` only if it still names that pid."""
    if expected_pid is not None:
        current = read(paths)
        if current is not None and current.pid != expected_pid:
            return
    paths.state_file.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a running (not zombie) process."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _win_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return not _is_zombie(pid)


def is_server_process(pid: int) -> bool:
    """Guard against pid reuse: on Linux the process must run the server module."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no procfs (macOS): trust the pid
    return SERVER_MODULE.encode() in cmdline


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no procfs (macOS): os.kill already said it exists
    # The state letter follows the parenthesised command name, which may hold spaces.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _win_pid_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
