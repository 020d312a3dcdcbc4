"""serve / stop / status of the embedded Foundry Local server (the launcher side).

``serve`` validates everything it can before spawning (model options, SDK
present, port free, catalog reachable), then starts ``python -m
stackctl.foundry.server`` detached, relays its start-up events, and returns
only when the server answers over HTTP with the model loaded — or raises a
StackError whose message is one line saying what failed and what to do.

Invariants:
- At most one embedded server per state dir: a live one is refused by name
  (pid, URL, model); a stale state file (process gone or pid reused) is removed;
  start and stop hold the stack lock (stackctl/lock.py), so two ``serve`` calls,
  or a ``serve`` and an ``up``/``down``, never race.
- Only the verified server process (pid + start time + command line, state.py) is
  ever signalled, through its psutil handle, which re-checks the start time.
- Binds loopback only (containers reach it through the stack's gateway, which wants a
  key); 0.0.0.0 or another address only when the caller passes ``host`` explicitly.
- Waits are conditions with deadlines (start-up events, HTTP readiness,
  process exit), never fixed sleeps. Nothing here calls ``POST /shutdown``.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

from stackctl.config.stack import ROOT
from stackctl.console import cmd
from stackctl.errors import StackError, UsageError
from stackctl.foundry import discovery, runtime
from stackctl.foundry import state as state_mod
from stackctl.foundry.events import ERROR, READY, STAGE, Event, decode
from stackctl.foundry.model_spec import resolve
from stackctl.foundry.paths import FoundryPaths
from stackctl.foundry.state import ServerState
from stackctl.lock import owner, same_process, stack_lock
from stackctl.ports import bind_error

STARTUP_TIMEOUT_S = 120.0  # longest silence allowed during start-up (downloads report progress)
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ServerStatus:
    """What ``status`` found. ``answering``: the HTTP API replied; ``loaded_models``
    are the chat models loaded at ``state.chat_base_url``."""

    running: bool
    state: ServerState | None = None
    answering: bool = False
    loaded_models: tuple[str, ...] = ()
    stale: ServerState | None = None  # a dead server's state file, removed just now
    stale_why: str = ""  # why it was stale (gone, pid reused, another program), in words
    problem: str = ""


@dataclass(frozen=True)
class StopResult:
    pid: int
    seconds: float
    forced: bool  # SIGKILL was needed after the SIGTERM deadline
    state: ServerState | None  # None: only its supervisor was running (between restarts)


# -- serve ------------------------------------------------------------------------


def serve(
    state_dir: Path,
    *,
    port: int,
    model: str | None = None,
    model_path: str | None = None,
    name: str | None = None,
    host: str | None = None,
    catalog_url: str | None = None,
    startup_timeout: float = STARTUP_TIMEOUT_S,
    on_event: Callable[[Event], None] = lambda event: None,
    python: str = sys.executable,
    http: httpx.Client | None = None,
    supervise: bool = False,
) -> ServerState:
    """Start the embedded server; return its state once it serves the model.
    ``supervise``: a supervisor restarts it after a crash (supervisor.py)."""
    spec = resolve(model, model_path, name)
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is not a port (1-65535)")
    paths = FoundryPaths(Path(state_dir).resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    with stack_lock(paths.state_dir, "foundry.serve"):
        live, _stale = state_mod.read_live(paths)
        if live is not None:
            raise StackError(already_running_message(live))
        keeper = _live_supervisor(paths)
        if keeper is not None:
            raise StackError(f"the embedded Foundry Local server is being restarted by its supervisor "
                             f"(pid {keeper.pid}) — wait a few seconds, or run `{cmd('foundry.stop')}` first")
        if importlib.util.find_spec("foundry_local_sdk") is None:
            raise UsageError(f"foundry-local-sdk is not installed — run `{runtime.INSTALL_HINT}` and retry")
        hosts = _bind_hosts(host, port)
        if not spec.local and not catalog_url:
            _check_catalog(spec.alias, http)
        try:
            state = _spawn_and_wait(paths, spec, port, hosts, catalog_url, startup_timeout, on_event, python,
                                    supervise)
        except BaseException:  # the start failed: its supervisor must not outlive it
            _end_supervisor(paths)
            raise
        try:
            _wait_http_ready(state, http)
        except BaseException:  # not ready, or Ctrl-C: serve failed, so no server is left running
            _end_supervisor(paths)
            _terminate_pid(state.pid, state.create_time, state.boot_time, STOP_TIMEOUT_S)
            state_mod.remove(paths, expected_pid=state.pid)
            raise
    return state


def already_running_message(live: ServerState) -> str:
    return (
        f"an embedded Foundry Local server is already running: pid {live.pid} at {live.root_url} "
        f"serving {live.model_id} — use it, or run `{cmd('foundry.stop')}` first"
    )


def _bind_hosts(host: str | None, port: int) -> list[str]:
    """Loopback only (containers reach it through the stack's gateway, which guards it
    with a key), or loopback plus an explicit host, or 0.0.0.0/:: alone."""
    if host in ("0.0.0.0", "::"):
        hosts = [host]
    elif host:
        hosts = ["127.0.0.1", host]
    else:
        hosts = ["127.0.0.1"]
    for h in dict.fromkeys(hosts):
        err = bind_error(h, port)
        if err == errno.EADDRINUSE:
            raise StackError(runtime.port_in_use_message(port), exit_code=2)
        if err is not None:
            raise UsageError(f"cannot bind {h}:{port} ({os.strerror(err)}) — pass a local address with --host, or omit it")
    return hosts


def _check_catalog(alias: str, http: httpx.Client | None) -> None:
    """Fail fast offline: any HTTP answer from the catalog host means it is reachable."""
    client = http or httpx.Client(timeout=httpx.Timeout(5.0))
    try:
        client.get(runtime.DEFAULT_CATALOG_URL)
    except httpx.HTTPError:
        raise StackError(runtime.offline_message(alias, runtime.DEFAULT_CATALOG_URL), exit_code=2) from None
    finally:
        if http is None:
            client.close()


def _spawn_and_wait(paths, spec, port, hosts, catalog_url, startup_timeout, on_event, python,
                    supervise=False) -> ServerState:
    """Spawn the detached server and follow its events until it is ready.

    Ctrl-C anywhere in here — even inside ``Popen``, after the launcher was exec'd but
    before we hold its handle — stops what was started (``_abort_start``): the pump
    thread reads the status pipe from before the spawn, so the server's identity
    arrives even then."""
    read_fd, write_fd = os.pipe()
    events: queue.Queue[Event | None] = queue.Queue()
    threading.Thread(target=_pump, args=(read_fd, events), daemon=True).start()
    seen: dict = {}  # the server's identity (pid, create_time, boot_time), from its first event
    argv = [python, "-m", state_mod.SERVER_MODULE, "--state-dir", str(paths.state_dir), "--port", str(port),
            "--alias", spec.alias, "--model-path", spec.path, "--catalog-url", catalog_url or "",
            "--status-fd", str(write_fd), "--detach"] + (["--supervise"] if supervise else [])
    for h in hosts:
        argv += ["--host", h]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    try:
        with open(paths.log_file, "ab") as log:
            log.write(f"\n=== foundry.serve {datetime.now(UTC).isoformat(timespec='seconds')}: {' '.join(argv[1:])}\n".encode())
            log.flush()
            try:
                launcher = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    pass_fds=(write_fd,), start_new_session=True, cwd=str(paths.root),
                )
            finally:
                os.close(write_fd)
        launcher.wait(timeout=30)  # returns at once: the server forked away (--detach)
        return _follow(paths, events, startup_timeout, on_event, seen)
    except KeyboardInterrupt:  # Ctrl-C during start-up: do not leave a half-started server
        _abort_start(paths, events, seen)
        raise


def _pump(fd: int, events: queue.Queue) -> None:
    with os.fdopen(fd, "rb") as pipe:
        for line in pipe:
            event = decode(line)
            if event is not None:
                events.put(event)
    events.put(None)


def _note_identity(event: Event, seen: dict) -> None:
    if not seen and event.state.get("pid"):  # our own child: its start time is its identity
        seen.update(pid=int(event.state["pid"]), created=event.state.get("create_time"),
                    boot=event.state.get("boot_time"))


def _follow(paths: FoundryPaths, events: queue.Queue, timeout: float, on_event, seen: dict) -> ServerState:
    last = "starting"
    while True:
        try:
            event = events.get(timeout=timeout)
        except queue.Empty:
            _abort_start(paths, events, seen, wait_s=0)
            raise StackError(
                f"the Foundry Local server made no progress for {timeout:.0f} s (last: {last}) — see {paths.log_file}"
            ) from None
        if event is None:
            raise StackError(f"the Foundry Local server exited during start-up ({last}) — {_log_tail(paths)}see {paths.log_file}")
        _note_identity(event, seen)
        if event.kind == STAGE:
            last = event.message
        on_event(event)
        if event.kind == ERROR:
            raise StackError(event.message, exit_code=event.code)
        if event.kind == READY:
            return ServerState.from_json(json.dumps(event.state))


def _abort_start(paths: FoundryPaths, events: queue.Queue, seen: dict, wait_s: float = STOP_TIMEOUT_S) -> None:
    """Stop a start that is being abandoned (Ctrl-C, no progress).

    The server's identity is waited for (bounded) if it has not announced itself
    yet — else it would start unwatched. Then its supervisor goes first (it would
    restart a server it had seen ready; stopping, it SIGTERMs the server and waits),
    and the server itself, by identity, in case the supervisor did not get to it."""
    deadline = time.monotonic() + wait_s
    while not seen and (left := deadline - time.monotonic()) > 0:
        try:
            event = events.get(timeout=left)
        except queue.Empty:
            break
        if event is None:  # it exited
            break
        _note_identity(event, seen)
    _end_supervisor(paths)
    if seen:
        _terminate_pid(seen["pid"], seen["created"], seen["boot"], STOP_TIMEOUT_S)


def _log_tail(paths: FoundryPaths) -> str:
    try:
        lines = [ln.strip() for ln in paths.log_file.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f"last log line: {lines[-1][:200]} — " if lines else ""


def _wait_http_ready(state: ServerState, http: httpx.Client | None, timeout: float = READY_TIMEOUT_S) -> None:
    """Condition: /status answers and the model is listed as loaded at its prefix."""
    client = http or httpx.Client(timeout=httpx.Timeout(5.0), trust_env=False)
    deadline = time.monotonic() + timeout
    last = ""
    try:
        while True:
            found = discovery.probe(client, "embedded", state.root_url)
            if found.found and state.model_id in found.chat_models:
                return
            last = found.reason or f"{state.model_id} not listed as loaded (loaded: {', '.join(found.chat_models) or 'none'})"
            if time.monotonic() >= deadline:
                raise StackError(f"the server started but is not ready after {timeout:.0f} s: {last}")
            time.sleep(0.1)  # poll interval of the readiness condition above
    finally:
        if http is None:
            client.close()


# -- stop / status --------------------------------------------------------------------


def stop(state_dir: Path, *, timeout: float = STOP_TIMEOUT_S) -> StopResult:
    """SIGTERM the embedded server and wait until it is gone (SIGKILL after ``timeout``).

    Only the process the state file names, verified by pid + start time + command
    line, is signalled; an impostor (a reused pid) makes the state stale: it is
    removed and the error says so. Another user's server is left alone, in one line."""
    from stackctl.foundry import keeper as keep

    paths = FoundryPaths(Path(state_dir).resolve())
    with stack_lock(paths.state_dir, "foundry.stop"):
        keep.forget(paths)  # first: the keeper must not serve it again once it is stopped
        keeper = _live_supervisor(paths)
        found = state_mod.check(paths)
        live = found.live
        if keeper is not None:  # first the supervisor: it must not start the server again
            started = time.monotonic()
            with contextlib.suppress(psutil.NoSuchProcess):
                keeper.terminate()  # it SIGTERMs the server and waits for it
            if live is not None and found.process is not None:
                forced = _terminate(found.process, timeout)
            else:
                forced = False
            if not _wait_gone(keeper, timeout):
                keeper.kill()
                forced = True
            paths.supervisor_file.unlink(missing_ok=True)
            if live is None:
                return StopResult(pid=keeper.pid, seconds=time.monotonic() - started, forced=forced, state=None)
            state_mod.remove(paths, expected_pid=live.pid)
            return StopResult(pid=live.pid, seconds=time.monotonic() - started, forced=forced, state=live)
        if live is None:
            note = _stale_note(found)
            raise StackError(f"no embedded Foundry Local server is running in {paths.root}{note} — start one with `{cmd('foundry.serve')}`")
        user = owner(found.process)
        if user is not None:
            raise StackError(f"the embedded Foundry Local server (pid {live.pid}) belongs to user {user}, not to you "
                             f"— stop it as {user} (e.g. `sudo -u {user} {cmd('foundry.stop')}`)")
        started = time.monotonic()
        forced = _terminate(found.process, timeout)
        state_mod.remove(paths, expected_pid=live.pid)
    return StopResult(pid=live.pid, seconds=time.monotonic() - started, forced=forced, state=live)


def supervisor_running(state_dir: Path) -> bool:
    """True while a supervisor keeps (or is about to restart) the embedded server."""
    return _live_supervisor(FoundryPaths(Path(state_dir).resolve())) is not None


def _live_supervisor(paths: FoundryPaths) -> psutil.Process | None:
    """The supervisor supervisor.json names, if it still runs (pid + start time)."""
    from stackctl.foundry import supervisor

    rec = supervisor.read_record(paths)
    if rec is None:
        return None
    proc = same_process(rec["pid"], rec.get("create_time"), rec.get("boot_time"))
    if proc is None:
        paths.supervisor_file.unlink(missing_ok=True)
    return proc


def _end_supervisor(paths: FoundryPaths, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop the supervisor of a start that failed (it exits by itself, but not at once)."""
    keeper = _live_supervisor(paths)
    if keeper is None:
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        keeper.terminate()
    if not _wait_gone(keeper, timeout):
        with contextlib.suppress(psutil.NoSuchProcess):
            keeper.kill()
    paths.supervisor_file.unlink(missing_ok=True)


def _stale_note(found: state_mod.Found) -> str:
    if found.stale is None:
        return ""
    if found.gone:
        return f" (removed a stale state file of pid {found.stale.pid})"
    return f" (removed a stale state file of pid {found.stale.pid}: {found.why}; nothing was signalled)"


def status(state_dir: Path, *, http: httpx.Client | None = None) -> ServerStatus:
    """Is the embedded server running, answering, and serving its model?"""
    paths = FoundryPaths(Path(state_dir).resolve())
    found = state_mod.check(paths)
    live = found.live
    if live is None:
        return ServerStatus(running=False, stale=found.stale, stale_why=found.why,
                            problem=f"no embedded Foundry Local server is running in {paths.root}")
    client = http or httpx.Client(timeout=httpx.Timeout(5.0), trust_env=False)
    try:
        found = discovery.probe(client, "embedded", live.root_url)
    finally:
        if http is None:
            client.close()
    problem = "" if found.found else (found.reason or "not answering")
    if found.found and live.model_id not in found.chat_models:
        problem = f"{live.model_id} is not loaded"
    return ServerStatus(running=True, state=live, answering=found.found, loaded_models=found.chat_models, problem=problem)


def _terminate_pid(pid: int, created: float | None, boot: float | None, timeout: float) -> bool:
    """``_terminate`` the process ``pid`` only if it is still the one started at ``created``."""
    proc = same_process(pid, created, boot)
    return _terminate(proc, timeout) if proc is not None else False


def _terminate(proc: psutil.Process, timeout: float) -> bool:
    """SIGTERM, wait for exit; SIGKILL if still alive after ``timeout``. True if forced.

    psutil re-checks the start time before each signal, so a pid reused meanwhile is
    never signalled (NoSuchProcess: it is gone, which is what we wanted)."""
    try:
        proc.terminate()
        if _wait_gone(proc, timeout):
            return False
        proc.kill()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        raise StackError(f"not allowed to stop pid {proc.pid} (another user's process) — stop it as that user") from None
    if not _wait_gone(proc, 5.0):
        raise StackError(f"pid {proc.pid} survived SIGKILL — check it with `ps -p {proc.pid}`")
    return True


def _wait_gone(proc: psutil.Process | int, timeout: float) -> bool:
    """Condition with a deadline: the process exited (a zombie counts as gone)."""
    if isinstance(proc, int):
        proc = same_process(proc, state_mod.start_time(proc))
        if proc is None:
            return True
    deadline = time.monotonic() + timeout
    while True:
        try:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)  # poll interval of the exit condition
