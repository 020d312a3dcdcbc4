"""The newcomer's path on the real engine (issue 14): a fresh clone, no registry, a
local model folder.

1. `./stack up --model-path DIR` with images missing → ONE message naming every
   missing image key; nothing started; the model is remembered in .env (#4, #1).
2. images set → `up` with no model option works (remembered); `./stack logs
   open-webui` works (#1, #3).
3. the embedded Foundry is SIGKILLed → its supervisor brings it back and Open WebUI
   chats again with no command (issue 15, timed); server AND supervisor killed with
   the keeper's container stopped → `status` says it died, with pid and log (#6);
   `down`, then `up` again with no model option → works (#1); the same crash with the
   keeper running → chat comes back by itself; a simulated reboot (daemon stopped,
   the stack's processes killed, daemon started) → chat comes back by itself (timed).
4. a fresh .env on the old volume → `up` explains (earlier install, three ways
   out) and leaves nothing running; `./stack reset-admin` → `up` works (#8).
Every `./stack …` hint printed on the way is run as printed with `--help` (side-
effect free) and must succeed (#2).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from stackctl.config.settings import BASE_IMAGE_KEY, BY_KEY, PORT_KEYS
from stackctl.docker import engine
from tests.plugins.common import REPO, free_ports
from tests.plugins.stack import STACK_MODEL_DIR, E2EStack, write_env

HINT = re.compile(r"`(\./stack [^`]+)`")
VENV = Path(sys.executable).parent.parent


def _venv_current() -> None:
    """The wrapper must take this venv as is (else it would reinstall the shared one)."""
    parts = b"".join((REPO / p).read_bytes() for p in
                     ("pyproject.toml", "exporter/pyproject.toml", "gateway/pyproject.toml"))
    py = subprocess.run(["python3", "-V"], capture_output=True, text=True).stdout
    if (VENV / ".stack-key").read_text().strip() != hashlib.sha256(parts + py.encode()).hexdigest()[:16] \
            or (VENV / ".stack-src").read_text().strip() != str(REPO):
        pytest.fail(f"{VENV} is not current for this checkout; run ./stack once outside the tests")


class Newcomer(E2EStack):
    hints: set[str]

    def stack(self, *args: str, timeout: float = 600, **over: str) -> subprocess.CompletedProcess:
        """`./stack ARGS` as typed in the project folder (the real wrapper)."""
        cp = subprocess.run([str(REPO / "stack"), *args], cwd=REPO, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL,
                            env=self.process_env(STACK_VENV=str(VENV), **over))
        sys.stderr.write(f"\n$ ./stack {' '.join(args)} -> {cp.returncode}\n{cp.stdout[-3000:]}{cp.stderr[-3000:]}\n")
        self.hints |= set(HINT.findall(cp.stdout + cp.stderr))
        return cp

    def set_env(self, **values: str) -> None:
        lines = [ln for ln in self.env_file.read_text().splitlines() if ln.split("=", 1)[0] not in values]
        self.env_file.write_text("\n".join(lines + [f"{k}={v}" for k, v in values.items() if v is not None]) + "\n")

    def drop_env(self, *keys: str) -> None:
        lines = [ln for ln in self.env_file.read_text().splitlines() if ln.split("=", 1)[0] not in keys]
        self.env_file.write_text("\n".join(lines) + "\n")


def error_lines(cp: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in (cp.stdout + cp.stderr).splitlines() if ln.startswith("error: ")]


def running(project: str) -> list[str]:
    return [s for s, st in engine.services(docker.from_env(), project).items() if st.state == "running"]


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory, stack_images):
    _venv_current()
    root = tmp_path_factory.mktemp("newcomer")
    s = Newcomer(root / ".env", root / "state")
    s.hints = set()
    s.images = {k: v for k, v in stack_images.items() if k.endswith("_IMAGE")}
    write_env(s.env_file, s.state_dir, s.images)
    # write_env allocates the ports it knows; any other service's port gets a free one too
    written = {ln.split("=", 1)[0] for ln in s.env_file.read_text().splitlines()
               if ln.split("=", 1)[0] in PORT_KEYS and ln.split("=", 1)[1] != BY_KEY[ln.split("=", 1)[0]].default}
    others = [k for k in PORT_KEYS if k not in written]
    # a fresh clone: the catalog default model, which needs internet
    s.set_env(FOUNDRY_MODEL_PATH="", **dict(zip(others, map(str, free_ports(len(others))), strict=True)))
    yield s
    s.stack("down", "--volumes", "--yes", timeout=300)
    s.invoke("foundry.stop", timeout=120)


def test_missing_images_in_one_message_and_the_model_remembered(newcomer):
    s = newcomer
    tag = f"missing-{os.getpid()}"
    missing = {"OPENWEBUI_IMAGE": f"localhost:1/nope/open-webui:{tag}",
               "PROMETHEUS_IMAGE": f"localhost:1/nope/prometheus:{tag}",
               "EXPORTER_IMAGE": f"flcs-newcomer/exporter:{tag}",  # not built yet: its base is needed
               BASE_IMAGE_KEY: f"localhost:1/nope/python:{tag}"}
    s.set_env(**missing)
    cp = s.stack("up", "--model-path", str(STACK_MODEL_DIR), timeout=300)
    assert cp.returncode == 2, cp.stdout + cp.stderr
    errors = error_lines(cp)
    assert len(errors) == 1, errors
    for key in ("OPENWEBUI_IMAGE", "PROMETHEUS_IMAGE", BASE_IMAGE_KEY):
        assert f"{key}={missing[key]} (" in errors[0]
    assert errors[0].startswith("error: 3 image(s) are not present and cannot be pulled")
    assert not running(s.env["COMPOSE_PROJECT_NAME"])
    assert not (s.state_dir / "foundry" / "server.json").exists(), "Foundry started before the images were there"
    assert s.env["FOUNDRY_MODEL_PATH"] == str(STACK_MODEL_DIR.resolve())
    assert "remembered FOUNDRY_MODEL_PATH=" in cp.stdout
    s.set_env(**{k: s.images.get(k, BY_KEY[k].default) for k in missing})


def test_up_again_without_the_option_uses_the_remembered_model(newcomer):
    s = newcomer
    cp = s.stack("up", timeout=600)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "tiny-model-generic-cpu:1" in cp.stdout
    assert "model catalog" not in cp.stdout + cp.stderr
    logs = s.stack("logs", "open-webui", "--tail", "5")  # the documented form (#3)
    assert logs.returncode == 0 and "No idea what" not in logs.stderr, logs.stderr


def _server_pid(s) -> int:
    return int(re.search(r'"pid": (\d+)', (s.state_dir / "foundry" / "server.json").read_text()).group(1))


def _chat_through_open_webui(s) -> bool:
    from stackctl import openwebui

    ui = openwebui.login(openwebui.OpenWebUI(s.url("OPENWEBUI_PORT")), s.env["WEBUI_ADMIN_EMAIL"],
                         s.env["WEBUI_ADMIN_PASSWORD"], s.state_dir)
    r = ui.post("/api/chat/completions", timeout=30, json={
        "model": "tiny-model-generic-cpu:1", "stream": False, "max_tokens": 4,
        "messages": [{"role": "user", "content": "hi"}]})
    return r.status_code == 200 and bool(r.json()["choices"][0]["message"]["content"])


def test_a_sigkilled_embedded_foundry_comes_back_by_itself(newcomer):
    import time

    s = newcomer
    assert _chat_through_open_webui(s)
    pid = _server_pid(s)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:
        try:
            back = _server_pid(s) != pid and _chat_through_open_webui(s)
        except Exception:  # between the kill and the restart anything may fail
            back = False
        if back:
            break
        assert time.monotonic() < deadline, "chat did not come back within 120 s of the SIGKILL"
        time.sleep(0.5)
    print(f"\nembedded Foundry SIGKILLed → chat through Open WebUI works again after "
          f"{time.monotonic() - t0:.1f} s, no command run")


def _supervisor_pid(s) -> int | None:
    import json

    try:
        return json.loads((s.state_dir / "foundry" / "supervisor.json").read_text())["pid"]
    except FileNotFoundError:  # it stopped cleanly (and removed its record)
        return None


def _keeper(s):
    """The foundry-keeper container of this stack."""
    from stackctl.config.settings import KEEPER

    found = docker.from_env().containers.list(all=True, filters={"label": [
        f"com.docker.compose.project={s.env['COMPOSE_PROJECT_NAME']}", f"com.docker.compose.service={KEEPER.name}"]})
    assert len(found) == 1, found
    return found[0]


def _chat_back(s, old_pid: int, what: str, timeout: float = 180) -> float:
    """Seconds until a new server (not ``old_pid``) chats through Open WebUI."""
    import time

    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        try:
            back = (s.state_dir / "foundry" / "server.json").exists() and _server_pid(s) != old_pid \
                and _chat_through_open_webui(s)
        except Exception:  # while it comes back anything may fail
            back = False
        if back:
            return time.monotonic() - t0
        assert time.monotonic() < deadline, f"chat did not come back within {timeout:.0f} s {what}"
        time.sleep(0.5)


def test_a_dead_embedded_foundry_is_reported_and_up_restarts_it(newcomer):
    """Server AND supervisor killed while the keeper's container is not running (Docker
    stopped it): nothing brings it back, `status` says it died; `up` restarts both."""
    s = newcomer
    _keeper(s).stop()
    keeper = _supervisor_pid(s)
    pid = _server_pid(s)
    os.kill(keeper, signal.SIGKILL)  # everything dies (as in a crash of the machine's session)
    os.kill(pid, signal.SIGKILL)
    cp = s.stack("status")
    assert cp.returncode == 1
    text = " ".join((cp.stdout + cp.stderr).split())
    assert f"the stack's own Foundry Local server (pid {pid}) died" in text and "not found" not in text
    assert "server.log" in text and "./stack up` restarts it" in text
    assert s.stack("down").returncode == 0
    again = s.stack("up", timeout=600)  # no model option: the remembered folder
    assert again.returncode == 0, again.stdout + again.stderr
    assert "tiny-model-generic-cpu:1" in again.stdout
    assert _keeper(s).status == "running"


def test_a_reboot_brings_chat_back_with_no_command(newcomer):
    """The issue's simulation of a reboot: the daemon stops (every container with it),
    every process of the stack is killed, the daemon starts again."""
    from tests.e2e import daemon

    s = newcomer
    pid = _server_pid(s)
    argv = daemon.stop()
    for left in (pid, _supervisor_pid(s)):  # whatever of the stack still runs on the host
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(left, signal.SIGKILL)
    daemon.start(argv, s.state_dir.parent / "dockerd-reboot.log")
    took = _chat_back(s, pid, "of the daemon's start")
    print(f"\nreboot simulated (daemon stopped, the stack's processes killed, daemon started) → chat "
          f"through Open WebUI works again after {took:.1f} s from the daemon's start, no command run")
    from tests.plugins.common import wait_for

    wait_for(lambda: s.stack("status").returncode == 0, "`status` healthy (Open WebUI's health check passes "
             "some seconds after it chats)", timeout=120, interval=3)


def test_server_and_supervisor_killed_come_back_through_the_keeper(newcomer):
    """The same crash with the keeper's container running (after the reboot above, the
    supervisor is the keeper's own child): chat comes back by itself."""
    s = newcomer
    assert _chat_through_open_webui(s)
    pid = _server_pid(s)
    os.kill(_supervisor_pid(s), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    took = _chat_back(s, pid, "of the SIGKILLs")
    print(f"\nserver and supervisor SIGKILLed → chat through Open WebUI works again after {took:.1f} s "
          "(the keeper started it), no command run")
    assert "(foundry-keeper): -m stackctl.foundry.server" in (s.state_dir / "foundry" / "server.log").read_text()
    cp = s.stack("status")
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_fresh_env_on_old_volume_explains_stops_and_reset_admin_recovers(newcomer):
    s = newcomer
    assert s.stack("down").returncode == 0  # the old install's data stays in its volume
    # a fresh clone's .env: the same project name, new generated secrets
    s.set_env(WEBUI_ADMIN_PASSWORD=secrets.token_urlsafe(32), WEBUI_SECRET_KEY=secrets.token_urlsafe(32))
    cp = s.stack("up", timeout=600)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    errors = error_lines(cp)
    assert len(errors) == 1, errors
    line = errors[0]
    assert "earlier install" in line and "`./stack reset-admin`" in line
    assert "`./stack down --volumes --yes`" in line and "restore that install's .env" in line
    assert not running(s.env["COMPOSE_PROJECT_NAME"]), "containers left running"
    assert not (s.state_dir / "foundry" / "server.json").exists(), "the Foundry it started was left running"

    reset = s.stack("reset-admin", timeout=300)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    up = s.stack("up", timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr


def test_every_hint_printed_works_as_printed(newcomer):
    s = newcomer
    assert {"./stack reset-admin", "./stack up", "./stack down --volumes --yes"} <= s.hints
    for hint in sorted(s.hints):
        argv = hint.split()
        cp = subprocess.run([str(REPO / "stack"), *argv[1:], "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL,
                            env=s.process_env(STACK_VENV=str(VENV)))
        assert cp.returncode == 0 and "Usage:" in cp.stdout, f"{hint}: {cp.stderr[-500:]}"
