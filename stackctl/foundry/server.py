"""The embedded server process: ``python -m stackctl.foundry.server ARGS``.

Started detached by ``lifecycle.serve``. It runs the Foundry Local runtime,
reports start-up on ``--status-fd`` (see events.py), writes the state file once
ready, keeps the model loaded, and exits cleanly on SIGTERM/SIGINT.

Invariants:
- Start-up runs in a worker thread; the main thread only waits, so a signal is
  handled at once even while the native library downloads or loads.
- The state file exists only while the server is ready; it is removed on every
  exit path this process controls.
- The native library installs no signal handler, so this one does: stop the web
  service, close the manager, exit — bounded by a deadline, after which the
  process exits anyway. ``POST /shutdown`` is never used.
- The model stays loaded: a watchdog reloads it if the runtime ever unloads it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from stackctl.errors import StackError
from stackctl.foundry import catalog_stub, runtime
from stackctl.foundry import state as state_mod
from stackctl.foundry.events import ERROR, PROGRESS, READY, STAGE, Event
from stackctl.foundry.model_spec import ModelSpec
from stackctl.foundry.paths import FoundryPaths
from stackctl.foundry.urls import bind_urls, openai_base
from stackctl.lock import boot_time, start_time

log = logging.getLogger("stackctl.foundry.server")
STOP_DEADLINE_S = 8.0
WATCHDOG_EVERY_S = 30.0


class _Reporter:
    """Writes events to the launcher until ready/failed, then to the log only."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, event: Event) -> None:
        log.info("%s %s%s", event.kind, event.message, f" {event.percent:.0f}%" if event.kind == PROGRESS else "")
        with self._lock:
            if self._fd is None:
                return
            try:
                os.write(self._fd, event.encode())
            except OSError:  # the launcher went away; carry on, the log has it
                self._close()
                return
            if event.kind in (READY, ERROR):
                self._close()

    def _close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m stackctl.foundry.server")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", action="append", required=True, help="bind address (repeatable)")
    p.add_argument("--alias", required=True)
    p.add_argument("--model-path", default="")
    p.add_argument("--catalog-url", default="")
    p.add_argument("--status-fd", type=int)
    p.add_argument("--detach", action="store_true", help="fork once more so no parent has to reap us")
    p.add_argument("--supervise", action="store_true",
                   help="stay as a supervisor that restarts the server after a crash (supervisor.py)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.detach and hasattr(os, "fork") and os.fork() > 0:
        os._exit(0)
    paths = FoundryPaths(Path(args.state_dir).resolve())
    spec = ModelSpec(alias=args.alias, path=args.model_path)

    def run_server(status_fd: int | None) -> int:
        _log_as("foundry-server")
        return _Server(paths, spec, args, _Reporter(status_fd)).run()

    if not args.supervise:
        return run_server(args.status_fd)
    from stackctl.foundry import supervisor

    _log_as(supervisor.LABEL)

    def was_ready(pid: int) -> bool:
        st = state_mod.read(paths)
        return st is not None and st.pid == pid

    return supervisor.supervise(paths, run_server, args.status_fd, was_ready)


def _log_as(label: str) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, force=True,
        format=f"%(asctime)s %(levelname)s {label}[%(process)d] %(message)s",
    )


class _Server:
    def __init__(self, paths: FoundryPaths, spec: ModelSpec, args: argparse.Namespace, reporter: _Reporter) -> None:
        self.paths, self.spec, self.args, self.reporter = paths, spec, args, reporter
        self.wake = threading.Event()
        self.stop_requested = False
        self.remote_shutdown = False
        self.rt: runtime.Runtime | None = None
        self.failure: StackError | None = None
        self.state: state_mod.ServerState | None = None

    # -- signals and the main loop ------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        self.stop_requested = True
        self.wake.set()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # survive the launching terminal
        self.reporter.send(Event(STAGE, "starting the Foundry Local runtime",
                                 state={"pid": os.getpid(), "create_time": start_time(os.getpid()),
                                        "boot_time": boot_time()}))
        threading.Thread(target=self._start, name="startup", daemon=True).start()
        while not (self.stop_requested or self.failure or self.remote_shutdown):
            self.wake.wait(timeout=WATCHDOG_EVERY_S if self.state else None)
            self.wake.clear()
            self._watchdog()
        if self.failure is not None:
            self.reporter.send(Event(ERROR, str(self.failure), code=self.failure.exit_code))
            self._exit_now(self.failure.exit_code)
        if self.state is None:  # stopped during start-up: nothing worth a clean close
            self.reporter.send(Event(ERROR, "the server was stopped during start-up", code=1))
            self._exit_now(143)
        if self.remote_shutdown:
            log.warning("the runtime was shut down from outside (POST /shutdown?); exiting")
            self._exit_now(1)
        return self._stop()

    def _watchdog(self) -> None:
        if self.state is None or self.rt is None or self.stop_requested:
            return
        if self._shutdown_requested_remotely():
            self.remote_shutdown = True
            return
        try:
            if not self.rt.model.is_loaded:
                log.warning("model %s was unloaded; loading it again", self.rt.model_id)
                runtime.load(self.rt.model)
        except Exception as err:
            log.error("watchdog: %s", err)

    def _shutdown_requested_remotely(self) -> bool:
        try:
            return bool(self.rt and self.rt.manager.is_shutdown_requested())
        except Exception:
            return True

    # -- start-up (worker thread) ---------------------------------------------

    def _start(self) -> None:
        try:
            self.rt = self._bring_up()
            self.state = self._record(self.rt)
            self.reporter.send(Event(READY, f"serving {self.rt.model_id}", state=json.loads(self.state.to_json())))
        except StackError as err:
            self.failure = err
        except Exception as err:  # unexpected: still one line for the user, details in the log
            log.exception("start-up failed")
            self.failure = StackError(f"the Foundry Local server failed to start: {err} — see {self.paths.log_file}")
        self.wake.set()

    def _bring_up(self) -> runtime.Runtime:
        catalog_url = self.args.catalog_url or (catalog_stub.start() if self.spec.local else None)
        web = bind_urls(self.args.host, self.args.port)
        log.info("binding %s; catalog %s", web, catalog_url or runtime.DEFAULT_CATALOG_URL)
        manager = runtime.initialize(self.paths, web, catalog_url)
        if self.spec.local:
            self.reporter.send(Event(STAGE, f"registering {self.spec.path} as {self.spec.local_id}"))
            model = runtime.register_local(manager, self.spec)
        else:
            self.reporter.send(Event(STAGE, f"looking up {self.spec.alias} in the catalog"))
            model = runtime.catalog_model(manager, self.spec.alias, catalog_url or runtime.DEFAULT_CATALOG_URL)
            if not model.is_cached:
                self.reporter.send(Event(STAGE, f"downloading {model.id}"))
                runtime.download(model, lambda pct: self.reporter.send(Event(PROGRESS, model.id, percent=pct)))
        self.reporter.send(Event(STAGE, f"loading {model.id}"))
        runtime.load(model)
        self.reporter.send(Event(STAGE, "starting the web service"))
        urls = runtime.start_web(manager, self.args.port)
        return runtime.Runtime(manager=manager, model=model, model_id=model.id, urls=urls)

    def _record(self, rt: runtime.Runtime) -> state_mod.ServerState:
        urls = tuple(u.rstrip("/") for u in rt.urls) or (f"http://127.0.0.1:{self.args.port}",)
        if urls[0].startswith(("http://0.0.0.0", "http://[::]")):  # all interfaces: say so for users,
            urls = (f"http://127.0.0.1:{self.args.port}", *urls)  # but clients use loopback
        root = next((u for u in urls if "127.0.0.1" in u or "localhost" in u), None)
        root = root or f"http://127.0.0.1:{self.args.port}"
        bases = (openai_base(root), openai_base(root, local=True)) if self.spec.local else (openai_base(root),)
        st = state_mod.ServerState(
            pid=os.getpid(), port=self.args.port, root_url=root, urls=urls,
            model_id=rt.model_id, model_alias=self.spec.alias,
            model_source="local" if self.spec.local else "catalog",
            chat_base_url=bases[-1], openai_base_urls=bases,
            log_path=str(self.paths.log_file), started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            state_dir=str(self.paths.state_dir), model_path=self.spec.path,
            create_time=start_time(os.getpid()),  # with the pid, this process's identity
            boot_time=boot_time(),
        )
        state_mod.write(self.paths, st)
        return st

    # -- shutdown ----------------------------------------------------------------

    def _stop(self) -> int:
        log.info("stopping")
        state_mod.remove(self.paths, expected_pid=os.getpid())
        done = threading.Event()

        def close() -> None:
            try:
                if self.rt is not None:
                    self.rt.manager.stop_web_service()
                    self.rt.manager.close()
            except Exception as err:
                log.warning("clean close failed: %s", err)
            done.set()

        threading.Thread(target=close, name="close", daemon=True).start()
        if not done.wait(STOP_DEADLINE_S):
            log.warning("clean close took over %.0f s; exiting anyway", STOP_DEADLINE_S)
            self._exit_now(0)
        log.info("stopped")
        logging.shutdown()
        return 0

    def _exit_now(self, code: int) -> None:
        state_mod.remove(self.paths, expected_pid=os.getpid())
        logging.shutdown()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
