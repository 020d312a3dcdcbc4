"""The keeper: brings the stack's embedded Foundry Local back when nothing else does.

The embedded server has a supervisor (supervisor.py) that restarts it after a crash,
but both are host processes: a reboot, or a SIGKILL of the supervisor, leaves chat
dead until someone runs `./stack up`. The keeper closes that gap. It runs in the
``foundry-keeper`` container (compose.yaml), which Docker restarts by its restart
policy when the daemon starts, with host networking and the host's pid namespace and
the state dir mounted at its own path, so what it starts is the same server as
`up` starts: on the host's loopback, in the same state files, visible to `status`
and stoppable by `down` and `foundry.stop` by pid.

Invariants:
- It acts only on the keep record (``keep.json``): `up` writes it once the stack serves
  its own Foundry (what to serve: port, model, bind addresses), and every stop removes
  it before signalling (`foundry.stop`, `down`, a failed `up`). No record: it idles.
- It starts the server only when no supervisor and no server of this state dir is
  alive, and only holding the stack lock (`up`, `down` and `foundry.serve` hold it
  while they change the server): it never races the commands.
- What it starts is ``python -m stackctl.foundry.server … --supervise`` (its own
  supervisor, so a later crash is handled as on the host), logged to server.log with a
  session header like `foundry.serve`'s, so `status` and `doctor` read it alike.
- A start that fails is tried again after RETRY_S, never in a tight loop.
- SIGTERM (``docker stop``, the daemon's shutdown) stops what it started, cleanly,
  and keeps the record: after the reboot it serves again.

Its health: after each look it touches ``--heartbeat FILE`` when all is well (nothing
to keep, or something keeps it); the container's health check only reads that file's
age, so it costs a bare interpreter start, not the stack's imports.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from stackctl.config.settings import KEEPER
from stackctl.errors import StackError
from stackctl.foundry import state as state_mod
from stackctl.foundry import supervisor
from stackctl.foundry.paths import FoundryPaths
from stackctl.lock import same_process

log = logging.getLogger("stackctl.foundry.keeper")
RECORD_VERSION = 1
POLL_S = 1.0  # how often it looks (a reboot or a dead supervisor is noticed within this)
RETRY_S = 30.0  # after a start that did not become ready
STOP_S = 20.0  # what a stop waits for the supervisor (it stops the server cleanly)
HEARTBEAT_STALE_S = 15.0  # compose.yaml's health check: older than this is unhealthy
LABEL = KEEPER.name  # its log lines, its hold of the stack lock, its session header in server.log


# -- the keep record (written by `up`, removed by every stop) ------------------------


def remember(paths: FoundryPaths, st: state_mod.ServerState) -> None:
    """Record what the stack serves, so the keeper can serve it again (atomic, 0600)."""
    hosts = list(dict.fromkeys(h for u in st.urls if (h := urlsplit(u).hostname)))
    if "0.0.0.0" in hosts or "::" in hosts:
        hosts = [h for h in hosts if h in ("0.0.0.0", "::")][:1]
    rec = {"version": RECORD_VERSION, "port": st.port, "alias": st.model_alias,
           "model_path": st.model_path, "hosts": hosts or ["127.0.0.1"]}
    if read(paths) == rec:
        return
    tmp = paths.keep_file.with_name(f".{paths.keep_file.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(rec, indent=2) + "\n")
    os.replace(tmp, paths.keep_file)


def forget(paths: FoundryPaths) -> None:
    paths.keep_file.unlink(missing_ok=True)


def read(paths: FoundryPaths) -> dict | None:
    """The keep record, or None (missing, unreadable, another version: nothing to keep)."""
    try:
        rec = json.loads(paths.keep_file.read_text())
    except (OSError, ValueError):
        return None
    ok = (isinstance(rec, dict) and rec.get("version") == RECORD_VERSION and isinstance(rec.get("port"), int)
          and isinstance(rec.get("alias"), str) and isinstance(rec.get("hosts"), list))
    return rec if ok else None


def server_argv(paths: FoundryPaths, rec: dict, python: str = sys.executable) -> list[str]:
    argv = [python, "-m", state_mod.SERVER_MODULE, "--state-dir", str(paths.state_dir),
            "--port", str(rec["port"]), "--alias", rec["alias"],
            "--model-path", rec.get("model_path") or "", "--supervise"]
    for h in rec["hosts"]:
        argv += ["--host", str(h)]
    return argv


# -- who keeps it now -------------------------------------------------------------------


def kept(paths: FoundryPaths) -> bool:
    """True while a supervisor or a server of this state dir is alive (pid + start time)."""
    live, _stale = state_mod.read_live(paths)
    if live is not None:
        return True
    rec = supervisor.read_record(paths)
    return rec is not None and same_process(rec["pid"], rec.get("create_time"), rec.get("boot_time")) is not None


def healthy(paths: FoundryPaths) -> bool:
    return read(paths) is None or kept(paths)


# -- the loop --------------------------------------------------------------------------


class Keeper:
    def __init__(self, paths: FoundryPaths, poll_s: float = POLL_S, retry_s: float = RETRY_S,
                 heartbeat: Path | None = None) -> None:
        self.paths, self.poll_s, self.retry_s, self.heartbeat = paths, poll_s, retry_s, heartbeat
        self.stopping = False
        self.child: subprocess.Popen | None = None
        self.not_before = 0.0  # no new start before this (monotonic): after a failed one
        self.started, self.served = 0.0, False  # when the child started; whether its server became ready
        self.said = ""

    def on_signal(self, signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.on_signal)
        log.info("watching %s (every %g s)", self.paths.keep_file, self.poll_s)
        while not self.stopping:
            if self.child is not None:
                self._watch_child()
            else:
                self._look()
            self._beat()
            self._sleep(self.poll_s)
        self._stop_child()
        log.info("stopped")
        return 0

    def _beat(self) -> None:
        """Touch the heartbeat file while all is well; let it age otherwise."""
        if self.heartbeat is not None and healthy(self.paths):
            self.heartbeat.touch()

    def _say(self, what: str) -> None:
        if what != self.said:  # the same state is said once, not every second
            log.info("%s", what)
            self.said = what

    def _look(self) -> None:
        rec = read(self.paths)
        if rec is None:
            return self._say("nothing to keep (no keep record: the stack does not serve its own Foundry Local)")
        if kept(self.paths):
            return self._say("the embedded Foundry Local is kept (its server or supervisor is alive)")
        if time.monotonic() < self.not_before:
            return None
        self._start(rec)
        return None

    def _start(self, rec: dict) -> None:
        from stackctl.lock import stack_lock

        model = rec.get("model_path") or ""
        if model and not Path(model).is_dir():
            self._say(f"cannot serve {model}: not a folder in this container (FOUNDRY_KEEPER_MODEL_DIR "
                      "mounts it; `./stack up` sets it)")
            self.not_before = time.monotonic() + self.retry_s
            return
        try:
            with stack_lock(self.paths.state_dir, LABEL):
                if read(self.paths) != rec or kept(self.paths):  # a command changed it meanwhile
                    return
                self._spawn(rec)
        except StackError as err:  # a command holds the lock: it decides; look again later
            self._say(f"waiting: {err}")

    def _spawn(self, rec: dict) -> None:
        argv = server_argv(self.paths, rec)
        log.warning("the embedded Foundry Local is not running and nothing keeps it; starting it: %s",
                    " ".join(argv[1:]))
        with open(self.paths.log_file, "ab") as out:
            out.write(f"\n=== foundry.serve {datetime.now(UTC).isoformat(timespec='seconds')} "
                      f"({LABEL}): {' '.join(argv[1:])}\n".encode())
            out.flush()
            self.child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=str(self.paths.root))
        self.started, self.served = time.monotonic(), False
        # Hold the lock until its supervisor has recorded itself (or it is gone): a
        # command taking the lock next sees who keeps the server.
        deadline = time.monotonic() + 10
        while self.child.poll() is None and not self._recorded() and time.monotonic() < deadline:
            time.sleep(0.05)  # poll of a condition: the supervisor's record appears

    def _recorded(self) -> bool:
        rec = supervisor.read_record(self.paths)
        return rec is not None and self.child is not None and rec["pid"] == self.child.pid

    def _watch_child(self) -> None:
        assert self.child is not None
        code = self.child.poll()
        if code is None:
            self.served = self.served or state_mod.read_live(self.paths)[0] is not None
            return
        ran = time.monotonic() - self.started
        log.warning("the supervisor it started (pid %d) exited (%s) after %.0f s", self.child.pid,
                    f"exit {code}" if code >= 0 else f"signal {signal.Signals(-code).name}", ran)
        self.child = None
        self.said = ""
        if not self.served:  # a start that failed: not again at once
            log.warning("its server never became ready; trying again in %.0f s (see %s)", self.retry_s,
                        self.paths.log_file)
            self.not_before = time.monotonic() + self.retry_s

    def _stop_child(self) -> None:
        if self.child is None or self.child.poll() is not None:
            return
        self.child.terminate()  # the supervisor SIGTERMs the server and waits for its clean stop
        try:
            code = self.child.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.child.kill()
            code = self.child.wait(5)
        log.info("stopped the supervisor it started (pid %d, exit %d); the keep record stays for the next start",
                 self.child.pid, code)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, seconds))  # the poll interval, cut short by a stop


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stackctl.foundry.keeper", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", required=True, help="the stack's STACK_STATE_DIR (absolute)")
    p.add_argument("--heartbeat", type=Path, help="file touched after each look while all is well (health check)")
    p.add_argument("--poll", type=float, default=POLL_S, help="seconds between looks (default %(default)s)")
    args = p.parse_args(argv)
    paths = FoundryPaths(Path(args.state_dir))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format=f"%(asctime)s %(levelname)s {LABEL}[%(process)d] %(message)s")
    if not paths.root.is_dir():
        log.error("%s is not a folder: the state dir is not mounted (FOUNDRY_KEEPER_STATE_DIR; `./stack up` sets it)",
                  paths.root)
        return 2
    return Keeper(paths, poll_s=args.poll, heartbeat=args.heartbeat).run()


if __name__ == "__main__":
    sys.exit(main())
