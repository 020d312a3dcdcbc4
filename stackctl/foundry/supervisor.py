"""Keeps the embedded server alive: ``python -m stackctl.foundry.server … --supervise``.

The detached launcher becomes this small supervisor; it forks the real server (the
native runtime is loaded only in the child, never here), and when the server dies of
anything but a clean stop — ``kill -9``, a crash, the OOM killer — it starts it again
on the same port with the same model, after a back-off (1 s, doubling to 30 s; back to
1 s once a run lasted 60 s). Chat through the gateway recovers with no command.

Invariants:
- A first start that fails (bad model, port taken) is NOT retried: the launcher has
  reported it; retrying would hide it. Only a server that was once ready is restarted.
- SIGTERM/SIGINT to the supervisor stop the server (SIGTERM, its own clean stop) and
  then the supervisor; a server that exits 0 (stopped by `foundry.stop`) ends it too.
- Its identity (pid + start time) is in ``supervisor.json`` while it runs, so
  `foundry.stop` signals exactly it, and `serve` refuses a second one.
- Every death and restart is one line in server.log (the state's log), so `status`
  and `doctor` can tell "restarted after SIGKILL" from "down".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable

from stackctl.foundry.paths import FoundryPaths
from stackctl.lock import boot_time, start_time

log = logging.getLogger("stackctl.foundry.supervisor")
BACKOFF_FIRST_S, BACKOFF_MAX_S, HEALTHY_RUN_S = 1.0, 30.0, 60.0
POLL_S = 0.2
LABEL = "foundry-supervisor"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def describe(status: int) -> str:
    """'signal SIGKILL' / 'exit 1' from a waitpid status. Pure."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"signal {signal.Signals(sig).name}"
        except ValueError:
            return f"signal {sig}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def next_backoff(current: float, ran_s: float) -> float:
    """The wait before the next restart. Pure."""
    if ran_s >= HEALTHY_RUN_S:
        return BACKOFF_FIRST_S
    return min(BACKOFF_MAX_S, current * 2)


def write_record(paths: FoundryPaths) -> None:
    pid = os.getpid()
    tmp = paths.supervisor_file.with_name(f".{paths.supervisor_file.name}.{pid}.tmp")
    tmp.write_text(json.dumps({"pid": pid, "create_time": start_time(pid), "boot_time": boot_time()}))
    os.replace(tmp, paths.supervisor_file)


def read_record(paths: FoundryPaths) -> dict | None:
    try:
        data = json.loads(paths.supervisor_file.read_text())
        return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def remove_record(paths: FoundryPaths) -> None:
    data = read_record(paths)
    if data is None or data["pid"] == os.getpid():
        paths.supervisor_file.unlink(missing_ok=True)


def supervise(paths: FoundryPaths, run_server: Callable[[int | None], int], status_fd: int | None,
              was_ready: Callable[[int], bool]) -> int:
    """Run ``run_server(status_fd)`` in a forked child, again after each crash.

    ``was_ready(pid)``: whether that child ever became ready (it wrote the state file)."""
    stop = {"requested": False, "child": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["requested"] = True
        if stop["child"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stop["child"], signal.SIGTERM)

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    write_record(paths)
    backoff, restarts, fd = BACKOFF_FIRST_S, 0, status_fd
    try:
        while not stop["requested"]:
            started = time.monotonic()
            # Signals are held across the fork: a SIGTERM meant for the new child must not
            # reach it while it still has this handler (the child's copy would swallow it),
            # and ours must not run before stop["child"] names it.
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            pid = os.fork()
            if pid == 0:  # the server: default signal dispositions, its own handlers
                for sig in STOP_SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                os._exit(run_server(fd))
            stop["child"] = pid
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            if fd is not None:  # only the first child reports to the launcher
                os.close(fd)
                fd = None
            ready, status = False, 0
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                ready = ready or was_ready(pid)
                # Poll of a condition (the child exited), not a fixed wait: a blocking
                # waitpid would miss the moment the child became ready (its state file).
                time.sleep(POLL_S)
            stop["child"] = 0
            ready = ready or was_ready(pid)  # a SIGKILLed server leaves its state file behind
            ran = time.monotonic() - started
            how = describe(status)
            if stop["requested"] or (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                log.info("server pid %d exited (%s); supervisor stopped", pid, how)
                return 0
            if not ready and restarts == 0:
                log.error("server pid %d failed to start (%s); not restarting", pid, how)
                return 1
            backoff = next_backoff(backoff, ran) if restarts else BACKOFF_FIRST_S
            restarts += 1
            log.warning("server pid %d died (%s) after %.0f s; restarting in %.0f s (restart %d)",
                        pid, how, ran, backoff, restarts)
            deadline = time.monotonic() + backoff
            while not stop["requested"] and time.monotonic() < deadline:
                time.sleep(POLL_S)  # the back-off itself, cut short by a stop request
        return 0
    finally:
        remove_record(paths)
