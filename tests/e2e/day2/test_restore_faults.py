"""A restore that fails half-way, on the real engine: the user's chats survive.

One throwaway stack (tests/plugins/stack.py) with two chats and 20,000 small files
in its Open WebUI volume (so a copy lasts long enough to be caught half-way), and a
backup of it. Each test then makes one restore fail in a different way and checks
that the live volume is byte-for-byte what it was (every path, mode, owner and
sha256), that its webui.db still holds the chats, and what the command said:

- the preflight: the staging volume on a 1 MiB tmpfs — refused before anything;
- disk full: the rollback volume on a tmpfs smaller than the data — the copy of
  the live data hits ENOSPC (the issue's reproduction);
- the copying container SIGKILLed half-way through the rollback copy, and again
  half-way through replacing the live data;
- Ctrl-C (SIGINT to the `invoke restore` process) half-way through replacing it.

"Half-way" is observed, not timed: the test watches the volumes from the host (it
runs beside the engine, as CI does), pauses the copying container once the copy is
visibly partial, re-checks, and only then strikes. Open WebUI is kept stopped
during the restores so nothing else moves the fingerprint; the last test starts it
and reads the chats through its API. Tests run in order (module-scoped stack).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.e2e.helpers import signin, states
from tests.plugins.common import REPO, wait_for
from tests.plugins.stack import INVOKE, STACK_MODEL_ID

FILLER = 20_000
CHATS = {"kept through a failed restore": "hello", "and this one too": "2+2?"}


def project(s) -> str:
    return s.env["COMPOSE_PROJECT_NAME"]


def live_volume(s) -> str:
    return f"{project(s)}_open-webui-data"


def fingerprint(s) -> str:
    """Every path with its type, mode, owner and link target, and every file's sha256, from
    an independent container (not a folder's own size: ext4 keeps a recreated one's
    bigger or smaller, with the same entries in it)."""
    script = ("cd /v && find . -printf '%p %y %m %U:%G %l\\n' | sort && "
              "find . -type f -print0 | sort -z | xargs -0 -r sha256sum")
    out = docker.from_env().containers.run(s.env["OPENWEBUI_IMAGE"], ["sh", "-c", script], remove=True,
                                           network_disabled=True,
                                           volumes={live_volume(s): {"bind": "/v", "mode": "ro"}})
    return out.decode()


def chat_titles(s) -> list[str]:
    script = ("import json, sqlite3; c = sqlite3.connect('file:/v/webui.db?immutable=1', uri=True); "
              "assert c.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'; "
              "print(json.dumps(sorted(r[0] for r in c.execute('SELECT title FROM chat'))))")
    out = docker.from_env().containers.run(s.env["OPENWEBUI_IMAGE"], ["python3", "-c", script], remove=True,
                                           network_disabled=True,
                                           volumes={live_volume(s): {"bind": "/v", "mode": "ro"}})
    return json.loads(out.decode().strip().splitlines()[-1])


def leftovers(s) -> list[str]:
    c = docker.from_env()
    vols = [v.name for v in c.volumes.list(filters={"name": f"{project(s)}_day2-"})]
    ctrs = [x.name for x in c.containers.list(all=True, filters={"name": f"{project(s)}-day2-"})]
    return vols + ctrs


def mountpoint(name: str) -> Path:
    path = Path(docker.from_env().volumes.get(name).attrs["Mountpoint"])
    assert path.is_dir(), f"{path} (volume {name}) is not readable here: these tests run beside the engine"
    return path


def filler_count(name: str) -> int:
    try:
        return len(os.listdir(mountpoint(name) / "filler"))
    except (FileNotFoundError, docker.errors.NotFound):
        return 0


@pytest.fixture(scope="module")
def stack(e2e_stack):
    cp = e2e_stack.invoke("up")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    ui = signin(e2e_stack)
    for title, question in CHATS.items():
        r = ui.post("/api/v1/chats/new", json={"chat": {
            "title": title, "models": [STACK_MODEL_ID],
            "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": "ok"}]}})
        r.raise_for_status()
    fill = (f"import os; os.makedirs('/v/filler'); "
            f"[open(f'/v/filler/f{{i:05d}}', 'wb').write(os.urandom(2048)) for i in range({FILLER})]")
    docker.from_env().containers.run(e2e_stack.env["OPENWEBUI_IMAGE"], ["python3", "-c", fill], remove=True,
                                     network_disabled=True,
                                     volumes={live_volume(e2e_stack): {"bind": "/v", "mode": "rw"}})
    return e2e_stack


@pytest.fixture(scope="module")
def archive(stack, tmp_path_factory):
    out = tmp_path_factory.mktemp("backups")
    cp = stack.invoke("backup", "--out", str(out))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    return next(out.glob("*.tar.gz"))


@pytest.fixture
def before(stack, archive):
    """Open WebUI stopped (nothing else writes), then the live volume's fingerprint."""
    assert stack.compose("stop", "open-webui").returncode == 0
    fp = fingerprint(stack)
    assert f"./filler/f{FILLER - 1:05d}" in fp and "./webui.db" in fp
    return fp


def assert_intact(s, before: str) -> None:
    assert fingerprint(s) == before, "the live Open WebUI data changed"
    assert chat_titles(s) == sorted(CHATS)


def error_line(cp) -> str:
    lines = [ln for ln in cp.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, cp.stdout + cp.stderr
    return lines[0]


def with_seams(s, tmpfs: str, archive: Path) -> subprocess.CompletedProcess:
    cp = subprocess.run([sys.executable, "-m", "tests.e2e.day2.restore_seams", "--tmpfs", tmpfs, str(archive)],
                        cwd=REPO, env=s.process_env(), capture_output=True, text=True, timeout=800,
                        stdin=subprocess.DEVNULL)
    sys.stderr.write(f"\n$ restore --tmpfs {tmpfs} -> {cp.returncode}\n{cp.stdout[-3000:]}{cp.stderr[-3000:]}\n")
    return cp


def test_preflight_refuses_a_restore_that_cannot_fit(stack, archive, before):
    cp = with_seams(stack, "staging:1m", archive)
    assert cp.returncode == 2, cp.stdout + cp.stderr
    line = error_line(cp)
    assert "not enough free disk space for the restore: it needs about" in line
    assert "has 1.0 MiB free" in line and "nothing was changed" in line
    assert "copying" not in cp.stdout  # refused before any copy
    assert_intact(stack, before)
    assert leftovers(stack) == []


def test_disk_full_during_the_rollback_copy_changes_nothing(stack, archive, before):
    """The issue's reproduction: the copy of the live data fills its volume half-way.
    Before the fix the live data was wiped, the partial copy put back, and the user
    read 'the previous data was put back unchanged'."""
    cp = with_seams(stack, "rollback:8m", archive)  # the data is ~45 MB
    assert_intact(stack, before)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    line = error_line(cp)
    assert "No space left on device" in line
    assert "nothing was changed: the live data was verified as it was" in line
    assert "put back" not in line
    assert leftovers(stack) == []


class Strike:
    """Run `invoke restore`, catch the copy half-way, pause it, check, then strike."""

    def __init__(self, s, archive: Path, tmp: Path) -> None:
        self.s, self.c = s, docker.from_env()
        self.out, self.err = tmp / "stdout", tmp / "stderr"
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.proc = subprocess.Popen([str(INVOKE), "-r", str(REPO), "restore", str(archive), "--yes"],
                                         env=s.process_env(), stdout=o, stderr=e, stdin=subprocess.DEVNULL)

    def copying(self) -> list:
        return self.c.containers.list(filters={"name": f"{project(self.s)}-day2-", "status": "running"})

    def when(self, partial, strike, timeout: float = 600) -> int:
        """Once ``partial()`` (files copied so far, or None) holds with a copy running:
        pause it, re-check, ``strike(containers)``. Returns what ``partial`` said."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if partial() is not None:
                ctrs = self.copying()
                for x in ctrs:
                    with contextlib.suppress(docker.errors.APIError):  # it may have ended meanwhile
                        x.pause()
                seen = partial()
                if seen is not None and ctrs:
                    strike(ctrs)
                    return seen
                for x in ctrs:
                    with contextlib.suppress(docker.errors.APIError):
                        x.unpause()
            time.sleep(0.005)
        raise AssertionError(f"never caught the copy half-way (restore exited {self.proc.poll()}): "
                             f"{self.out.read_text()[-2000:]}{self.err.read_text()[-2000:]}")

    def result(self) -> subprocess.CompletedProcess:
        code = self.proc.wait(timeout=600)
        cp = subprocess.CompletedProcess(self.proc.args, code, self.out.read_text(), self.err.read_text())
        sys.stderr.write(f"\n$ invoke restore (struck) -> {code}\n{cp.stdout[-3000:]}{cp.stderr[-3000:]}\n")
        return cp


def rollback_partial(s):
    def seen():
        vols = docker.from_env().volumes.list(filters={"name": f"{project(s)}_day2-rollback-"})
        n = filler_count(vols[0].name) if vols else 0
        return n if 0 < n < FILLER else None
    return seen


def live_partial(s):
    def seen():
        n = filler_count(live_volume(s))
        return n if n < FILLER else None
    return seen


def kill(ctrs) -> None:
    for x in ctrs:
        x.kill()


@pytest.mark.parametrize("phase", ["rollback-copy", "replace"])
def test_the_copying_container_killed_half_way(stack, archive, before, tmp_path, phase):
    run = Strike(stack, archive, tmp_path)
    partial = rollback_partial(stack) if phase == "rollback-copy" else live_partial(stack)
    copied = run.when(partial, kill)
    cp = run.result()
    assert_intact(stack, before)
    assert 0 <= copied < FILLER
    assert cp.returncode == 1, cp.stdout + cp.stderr
    line = error_line(cp)
    assert "its container was killed (exit 137)" in line
    if phase == "replace":
        assert "the previous data was put back and verified identical to before" in line
    else:
        assert "nothing was changed: the live data was verified as it was" in line
    assert leftovers(stack) == []


def test_ctrl_c_half_way_through_replacing_puts_the_data_back(stack, archive, before, tmp_path):
    run = Strike(stack, archive, tmp_path)
    run.when(live_partial(stack), lambda ctrs: run.proc.send_signal(signal.SIGINT))
    cp = run.result()
    assert_intact(stack, before)
    assert cp.returncode == 130, cp.stdout + cp.stderr
    line = error_line(cp)
    assert "interrupted (Ctrl-C) while replacing the data in" in line
    assert "the previous data was put back and verified identical to before" in line
    assert leftovers(stack) == []


def test_after_all_that_open_webui_serves_the_chats(stack):
    assert stack.compose("start", "open-webui").returncode == 0
    wait_for(lambda: states(stack)["open-webui"].ok, "Open WebUI is healthy again", timeout=300)

    def titles():
        r = signin(stack).get("/api/v1/chats/")
        return sorted(c["title"] for c in r.json()) if r.status_code == 200 else None

    assert wait_for(titles, "Open WebUI lists the chats", timeout=180) == sorted(CHATS)
