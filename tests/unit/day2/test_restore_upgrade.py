"""Restore and upgrade: the pure parts (version gate, staged verdict, tag resolution,
the .env rewrite, crash-loop detection) and upgrade's rollback on every kind of failure
(through a fake Docker client; the swap itself is in test_restore_swap.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import docker.errors
import httpx
import pytest

from stackctl.config import envfile
from stackctl.config.stack import Stack
from stackctl.console import Reporter
from stackctl.day2.archive import Manifest
from stackctl.day2.backup import BackupResult
from stackctl.day2.restore import refuse_if_newer, staged_verdict
from stackctl.day2.upgrade import no_crashloop, resolve_target, set_image, upgrade
from stackctl.day2.version import ImageVersion, is_newer, parse_probe, parse_version
from stackctl.docker.compose import Compose
from stackctl.docker.engine import ServiceState
from stackctl.errors import StackError

IMG = ImageVersion("owui:test", "0.12.4", frozenset({"aaa111", "bbb222"}))


def manifest(version: str) -> Manifest:
    return Manifest(created_at="t", stack_version="0.1.0", project="p", images={},
                    openwebui_version=version, volumes=("open-webui-data",), files={},
                    openwebui_image="ghcr.io/open-webui/open-webui:v" + version)


@pytest.mark.parametrize(("text", "want"), [("0.12.4", (0, 12, 4)), ("v0.6.5-rc1", (0, 6, 5)),
                                            ("1", (1,)), ("dev", None), (None, None)])
def test_parse_version(text, want):
    assert parse_version(text) == want


def test_is_newer():
    assert is_newer("0.12.5", "0.12.4")
    assert is_newer("0.13", "0.12.9")
    assert not is_newer("0.12.4", "0.12.4")
    assert not is_newer("0.12", "0.12.0")
    assert not is_newer("0.9.9", "0.12.4")
    with pytest.raises(ValueError, match="cannot compare Open WebUI version 'dev'"):
        is_newer("dev", "0.12.4")


def test_parse_probe_takes_the_last_json_line():
    out = 'some warning\n{"version": "0.12.4", "revisions": ["b", "a"]}\n'
    assert parse_probe("i", out) == ImageVersion("i", "0.12.4", frozenset({"a", "b"}))
    assert parse_probe("i", "boom") == ImageVersion("i", None, frozenset())


def test_a_newer_archive_is_refused_with_what_to_do():
    refuse_if_newer(manifest("0.12.4"), IMG)
    refuse_if_newer(manifest("0.11.0"), IMG)
    with pytest.raises(StackError) as e:
        refuse_if_newer(manifest("0.13.0"), IMG)
    assert str(e.value) == (
        "the backup was written by Open WebUI 0.13.0, newer than 0.12.4 in owui:test (its database "
        "migrations cannot be undone) — set OPENWEBUI_IMAGE to ghcr.io/open-webui/open-webui:v0.13.0 "
        "(or newer) in .env, then retry; nothing was changed")


def test_staged_verdict():
    ok = json.dumps({"integrity": ["ok"], "revision": "aaa111", "chats": 3})
    assert staged_verdict("noise\n" + ok, IMG).chats == 3
    bad = json.dumps({"integrity": ["*** in database main ***", "Page 5: btree"], "revision": "aaa111"})
    with pytest.raises(StackError, match=r"fails SQLite's integrity check \(\*\*\* in database main \*\*\*; Page 5"):
        staged_verdict(bad, IMG)
    unknown = json.dumps({"integrity": ["ok"], "revision": "zzz999"})
    with pytest.raises(StackError, match=r"schema revision zzz999, which owui:test .* does not know"):
        staged_verdict(unknown, IMG)
    with pytest.raises(StackError, match="the integrity check did not run"):
        staged_verdict("exit 1: Traceback", IMG)


@pytest.mark.parametrize(("to", "want"), [
    (None, "ghcr.io/open-webui/open-webui:v0.12.4"),
    ("v0.12.5", "ghcr.io/open-webui/open-webui:v0.12.5"),
    ("mirror.local:5000/owui:1", "mirror.local:5000/owui:1"),
    ("broken:1", "broken:1"),
])
def test_resolve_target(to, want):
    assert resolve_target("ghcr.io/open-webui/open-webui:v0.12.3", to, "ghcr.io/open-webui/open-webui:v0.12.4") == want


def test_resolve_target_keeps_a_registry_port_and_drops_a_digest():
    assert resolve_target("reg:5000/owui", "2", "x") == "reg:5000/owui:2"
    assert resolve_target("reg:5000/owui:1@sha256:abc", "2", "x") == "reg:5000/owui:2"


def test_set_image_rewrites_only_that_line_atomically(tmp_path):
    env = tmp_path / ".env"
    text = "# my comment\nCOMPOSE_PROJECT_NAME=x\nOPENWEBUI_IMAGE=old:1\n\nWEBUI_ADMIN_EMAIL=a@b.cd\n"
    env.write_text(text)
    set_image(env, "new:2")
    assert env.read_text() == text.replace("old:1", "new:2")
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert envfile.values(envfile.parse(env.read_text()))["OPENWEBUI_IMAGE"] == "new:2"


def st(restarts: int, state="running", health="starting"):
    return ServiceState("open-webui", "c", state, health, "img", restarts, ())


def test_no_crashloop_turns_a_restarted_container_into_a_fatal_exit():
    f = no_crashloop(lambda: {"open-webui": st(1)})
    assert f()["open-webui"].state == "exited"
    assert no_crashloop(lambda: {"open-webui": st(0)})()["open-webui"].state == "running"


# -- upgrade rolls back on every failure, not only StackError ---------------------------------


class FakeContainer:
    """A throwaway (version probe) or a compose service container, as the SDK shows them."""

    def __init__(self, image: str = "", service: str = "", versions: dict | None = None) -> None:
        self.image, self.name = image, service or f"probe-{image}"
        self.labels = {"com.docker.compose.service": service} if service else {}
        self.attrs = {"State": {"Status": "running", "Health": {"Status": "healthy"}},
                      "Config": {"Image": image}, "RestartCount": 0}
        self.versions = versions or {}

    def start(self) -> None:
        pass

    def wait(self, timeout=None) -> dict:
        return {"StatusCode": 0}

    def logs(self, **kw) -> bytes:
        return json.dumps({"version": self.versions.get(self.image), "revisions": ["aaa111"]}).encode()

    def remove(self, force=False) -> None:
        pass


class FakeDocker:
    """The Docker client seam: images are present, probes answer with ``versions``,
    Open WebUI is healthy; ``services_error`` makes listing the services fail."""

    def __init__(self, versions: dict[str, str], services_error: BaseException | None = None) -> None:
        self.versions, self.services_error = versions, services_error
        client = self

        class Images:
            def get(self, ref):
                return ref

        class Containers:
            def create(self, image, **kw):
                return FakeContainer(image, versions=client.versions)

            def list(self, **kw):
                if client.services_error is not None:
                    raise client.services_error
                return [FakeContainer(client.current, service="open-webui")]

        self.images, self.containers, self.current = Images(), Containers(), ""


def upgrade_stack(tmp_path) -> Stack:
    env = tmp_path / ".env"
    env.write_text("COMPOSE_PROJECT_NAME=unit-upgrade\nOPENWEBUI_IMAGE=owui:old\n")
    envfile.ensure(env)
    return Stack(tmp_path, env, envfile.load(env))


def manifest_for(stack: Stack) -> Manifest:
    return Manifest(created_at="t", stack_version="0.1.0", project=stack.project, images={},
                    openwebui_version="0.12.4", volumes=("open-webui-data",), files={})


def raises(exc: BaseException):
    def fail(*args, **kw):
        raise exc
    return fail


REQUEST = httpx.Request("POST", "http://127.0.0.1:3000/api/v1/auths/signin")
FAILURES = {
    "connect": (dict(bring_up=raises(httpx.ConnectError("connection refused", request=REQUEST))),
                "ConnectError: connection refused"),
    "status": (dict(smoke=raises(httpx.HTTPStatusError(
        "Server error '500 Internal Server Error'", request=REQUEST,
        response=httpx.Response(500, request=REQUEST)))), "HTTPStatusError: Server error '500"),
    "docker": (dict(services_error=docker.errors.APIError("500 Server Error: engine hiccup")),
               "APIError: 500 Server Error: engine hiccup"),
    "ctrl-c": (dict(smoke=raises(KeyboardInterrupt())), "interrupted (Ctrl-C)"),
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_upgrade_rolls_back_on_any_failure_and_says_so(tmp_path, kind):
    """On the code before issue 13 only a StackError rolled back: an httpx or Docker
    error, or Ctrl-C, escaped with .env left on the new tag and no restore."""
    seams, said = FAILURES[kind]
    stack = upgrade_stack(tmp_path)
    client = FakeDocker({"owui:old": "0.12.4", "owui:new": "0.12.5"}, seams.pop("services_error", None))
    client.current = "owui:new"
    archive = tmp_path / "unit-upgrade-backup.tar.gz"
    restored: list[tuple[Path, str]] = []
    rep = Reporter.quiet()
    with pytest.raises(StackError) as err:
        upgrade(to="owui:new", reporter=rep, stack=stack, client=client, compose=Compose(("true",), "2.0.0"),
                backup=lambda **kw: BackupResult(archive, manifest_for(stack), (), 0.0),
                restore=lambda p: restored.append((p, envfile.load(stack.env_file)["OPENWEBUI_IMAGE"])),
                **{"bring_up": lambda: None, "smoke": lambda s: None, **seams})
    msg = str(err.value)
    assert said in msg
    assert f"rolled back to owui:old and restored the backup {archive}" in msg
    assert restored == [(archive, "owui:old")]  # restored with .env already back on the old tag
    assert envfile.load(stack.env_file)["OPENWEBUI_IMAGE"] == "owui:old"
    assert err.value.exit_code == (130 if kind == "ctrl-c" else 1)
    assert "rolling back" in rep.console.file.getvalue()


def test_upgrade_says_where_things_are_when_the_rollback_fails_too(tmp_path):
    stack = upgrade_stack(tmp_path)
    client = FakeDocker({"owui:old": "0.12.4", "owui:new": "0.12.5"})
    client.current = "owui:new"
    archive = tmp_path / "b.tar.gz"
    with pytest.raises(StackError) as err:
        upgrade(to="owui:new", stack=stack, client=client, compose=Compose(("true",), "2.0.0"),
                backup=lambda **kw: BackupResult(archive, manifest_for(stack), (), 0.0),
                restore=raises(KeyboardInterrupt()), bring_up=lambda: None,
                smoke=raises(StackError("smoke failed at chat: 502")))
    msg = str(err.value)
    assert msg.startswith("upgrade to owui:new failed: smoke failed at chat: 502 — and the rollback "
                          "failed too (interrupted (Ctrl-C)); .env is back on owui:old; run `")
    assert f"restore {archive} --yes`" in msg
    assert envfile.load(stack.env_file)["OPENWEBUI_IMAGE"] == "owui:old"
