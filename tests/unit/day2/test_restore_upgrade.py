"""Pure parts of restore and upgrade: version gate, staged verdict, swap script, tag
resolution, the .env rewrite, crash-loop detection."""

from __future__ import annotations

import json
import stat

import pytest

from stackctl.config import envfile
from stackctl.day2.archive import Manifest
from stackctl.day2.restore import refuse_if_newer, staged_verdict, swap_script
from stackctl.day2.upgrade import no_crashloop, resolve_target, set_image
from stackctl.day2.version import ImageVersion, is_newer, parse_probe, parse_version
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


def test_swap_script_copies_live_to_rollback_before_replacing_and_keeps_caches():
    s = swap_script(("open-webui-data",), "swap")
    order = [s.index(x) for x in ('copy_in /t/open-webui-data /r/open-webui-data "cache"',
                                  'wipe /t/open-webui-data "cache"',
                                  'copy_in /s/open-webui-data /t/open-webui-data ""')]
    assert order == sorted(order)
    assert s.startswith("\nset -eu")
    r = swap_script(("open-webui-data", "prometheus-data"), "rollback")
    assert 'wipe /t/prometheus-data ""' in r and "copy_in /r/prometheus-data /t/prometheus-data" in r
    assert "/s/" not in r.split("wipe() {")[1]
    with pytest.raises(ValueError):
        swap_script(("open-webui-data",), "other")


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
