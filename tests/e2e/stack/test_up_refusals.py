"""`invoke up` refuses bad situations with one line, a non-zero exit, and
nothing changed: .env byte-for-byte the same, no container, no Foundry process."""

from __future__ import annotations

import socket

import docker
import pytest

from stackctl.docker import engine
from tests.plugins.stack import E2EStack, write_env


@pytest.fixture
def fresh(tmp_path, stack_images):
    s = E2EStack(tmp_path / ".env", tmp_path / "state")
    write_env(s.env_file, s.state_dir, {k: v for k, v in stack_images.items() if k.endswith("_IMAGE")})
    return s


def refused(s: E2EStack, code: int, needle: str, **env: str) -> str:
    before = s.env_file.read_bytes()
    cp = s.invoke("up", timeout=300, **env)
    errors = [ln for ln in (cp.stdout + cp.stderr).splitlines() if ln.startswith("error: ")]
    assert cp.returncode == code, cp.stdout + cp.stderr
    assert len(errors) == 1 and needle in errors[0], errors or cp.stdout + cp.stderr
    assert s.env_file.read_bytes() == before, ".env changed"
    project = s.env["COMPOSE_PROJECT_NAME"]
    assert not engine.services(docker.from_env(), project), "containers were created"
    assert not (s.state_dir / "foundry" / "server.json").exists(), "a Foundry server was left running"
    return errors[0]


def test_docker_not_running(fresh):
    refused(fresh, 2, "Docker Engine is not reachable", DOCKER_HOST="unix:///nonexistent/docker.sock")


def test_compose_missing(fresh):
    refused(fresh, 2, "Docker Compose not found", STACK_COMPOSE="/nonexistent/docker-compose")


def test_published_port_taken(fresh):
    port = int(fresh.env["OPENWEBUI_PORT"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        line = refused(fresh, 2, f"port {port} (OPENWEBUI_PORT) is already in use")
    assert "choose another port in .env" in line


def test_foundry_unreachable(fresh):
    text = fresh.env_file.read_text().replace("FOUNDRY_LOCAL_ENDPOINT=\n", "FOUNDRY_LOCAL_ENDPOINT=http://127.0.0.1:1\n")
    fresh.env_file.write_text(text)
    refused(fresh, 1, "FOUNDRY_LOCAL_ENDPOINT=http://127.0.0.1:1 does not answer")


def test_malformed_env_line(fresh):
    fresh.env_file.write_text(fresh.env_file.read_text() + "this is not a setting\n")
    before = fresh.env_file.read_bytes()
    cp = fresh.invoke("up", timeout=120)
    assert cp.returncode == 2
    errors = [ln for ln in (cp.stdout + cp.stderr).splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "expected KEY=VALUE" in errors[0] and "this is not a setting" in errors[0]
    assert fresh.env_file.read_bytes() == before
