"""`invoke smoke` on a real stack (tests/plugins/stack.py) with the tiny model:
it passes on a healthy stack, and when one link is broken it fails naming that
link and its fix. Each broken link is restored (`invoke up`, or loading the
model again) and the stack is proven healthy again before the next test.

Tests run in order on one throwaway stack; the smoke runs are subprocesses of
the real `invoke`, as a user types it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import httpx
import pytest

from stackctl import openwebui
from stackctl.checks.smoke import DEFAULT_SCREENSHOT
from stackctl.config import envfile
from stackctl.config.stack import Stack
from stackctl.foundry import view as foundry_link
from tests.plugins.common import REPO, free_port
from tests.plugins.stack import INVOKE


def smoke(s, *args: str, timeout: float = 300) -> tuple[int, dict | str, float]:
    """(exit code, JSON report (or text without --json), wall seconds) of `invoke smoke`."""
    t0 = time.monotonic()
    cp = subprocess.run([str(INVOKE), "-r", str(REPO), "smoke", *args], env=s.process_env(),
                        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    if "--json" not in args:
        return cp.returncode, cp.stdout + cp.stderr, wall
    try:
        return cp.returncode, json.loads(cp.stdout), wall
    except ValueError:
        raise AssertionError(f"`invoke smoke --json` printed no JSON (rc {cp.returncode}):\n"
                             f"{cp.stdout[-2000:]}{cp.stderr[-2000:]}") from None


def checks(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def wait_smoke_passes(s, timeout: float = 240) -> dict:
    """Polls `invoke smoke` until it passes: after a restore the exporter's chat
    canary runs once a minute, so the first runs may still see the old failure."""
    deadline = time.monotonic() + timeout
    while True:
        rc, report, _ = smoke(s, "--json")
        if rc == 0:
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"smoke still failing after {timeout}s: {json.dumps(report, indent=1)}")
        time.sleep(5)


def stack_of(s) -> Stack:
    return Stack(REPO, s.env_file, envfile.load(s.env_file))


def signin(s) -> openwebui.OpenWebUI:
    env = s.env
    ui = openwebui.OpenWebUI(s.url("OPENWEBUI_PORT"))
    return openwebui.login(ui, env["WEBUI_ADMIN_EMAIL"], env["WEBUI_ADMIN_PASSWORD"], s.state_dir)


def restore_with_up(s) -> None:
    cp = s.invoke("up")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    wait_smoke_passes(s)


def assert_broken_link(report: dict, name: str, fix_words: str) -> dict:
    assert report["ok"] is False
    assert report["first_failure"] == name, json.dumps(report, indent=1)
    c = checks(report)[name]
    assert c["status"] == "fail" and fix_words in c["fix"], c
    return c


@pytest.fixture(scope="module")
def up(e2e_stack):
    cp = e2e_stack.invoke("up", timeout=1500)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    wait_smoke_passes(e2e_stack)  # a fresh Prometheus needs a scrape and a rule evaluation first
    return e2e_stack


def test_smoke_passes_on_a_healthy_stack_and_says_how_long_it_took(up):
    rc, out, wall = smoke(up)
    assert rc == 0, out
    for name in ("foundry", "open-webui", "sign-in", "connection", "models", "chat", "chat-stream",
                 "exporter", "prometheus"):
        assert re.search(rf"^✓ {re.escape(name)}\s+\d+\.\d\ds ", out, re.M), (name, out)
    assert re.search(r"^– grafana\s+0\.00s  skipped: not running", out, re.M), out
    assert re.search(r"^– knowledge\s+\d+\.\d\ds  skipped: no knowledge collection with files — add a folder "
                     r"with `\S*stack knowledge\.sync FOLDER`$", out, re.M), out
    total = re.search(r"^smoke passed in (\d+\.\d)s$", out, re.M)
    assert total, out
    assert up.env["WEBUI_ADMIN_PASSWORD"] not in out
    print(f"\n`invoke smoke` on a healthy stack: {total.group(1)}s of checks, {wall:.1f}s wall "
          "(including the invoke process start)")


def test_a_synced_folder_is_cited_through_the_gateway_and_smoke_checks_it(up, tmp_path):
    """The whole stack: knowledge.sync, then smoke's knowledge check chats through Open WebUI
    and the gateway to Foundry Local. The collection is deleted again for the tests below."""
    notes = tmp_path / "handbook"
    notes.mkdir()
    (notes / "tides.md").write_text("# Tides\n\nThe moon's gravity pulls the oceans into two bulges, "
                                    "so most coasts see two high tides a day.\n")
    (notes / "espresso.txt").write_text("Espresso is brewed by forcing hot water at nine bars of pressure "
                                        "through finely ground coffee for about 25 seconds.\n")
    cp = up.invoke("knowledge.sync", str(notes))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    ui = signin(up)
    [kid] = [k["id"] for k in ui.get("/api/v1/knowledge/").json()["items"] if k["name"] == "handbook"]
    try:
        rc, out, _ = smoke(up)
        assert rc == 0, out
        assert re.search(r"^✓ knowledge\s+\d+\.\d\ds  'handbook': a question from espresso\.txt cited it "
                         r"\(#1 of 2 sources\)$", out, re.M), out
    finally:
        assert ui.delete(f"/api/v1/knowledge/{kid}/delete").status_code == 200


def test_twenty_runs_in_a_row_never_hit_the_sign_in_rate_limit(up):
    (up.state_dir / openwebui.TOKEN_FILE).unlink(missing_ok=True)  # the first run signs in once
    details, walls = [], []
    for _ in range(20):
        rc, report, wall = smoke(up, "--json")
        assert rc == 0, json.dumps(report, indent=1)
        details.append(checks(report)["sign-in"]["detail"])
        walls.append(wall)
    assert "signed in" in details[0]
    assert all("reused the cached token" in d for d in details[1:]), details
    print(f"\n20 smoke runs: {sum(walls):.0f}s, median {sorted(walls)[10]:.1f}s each")


def test_browser_check_chats_in_chromium_and_keeps_its_screenshot(up):
    # The stack's default (openwebui/openwebui.env) is legacy function calling:
    # Open WebUI's built-in tools would add ~9,700 prompt tokens to every message
    # from the UI, beyond the fixture model's 4,096-token context. No setting is
    # changed here, so this proves that default reaches Open WebUI.
    ui = signin(up)
    assert ui.get("/api/v1/configs/models").json()["DEFAULT_MODEL_PARAMS"] == {"function_calling": "legacy"}
    shot = REPO / DEFAULT_SCREENSHOT
    shot.unlink(missing_ok=True)
    rc, report, wall = smoke(up, "--json", "--browser")
    assert rc == 0, json.dumps(report, indent=1)
    b = checks(report)["browser"]
    assert b["status"] == "ok" and "reply streamed in" in b["detail"] and str(shot) in b["detail"]
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"\nbrowser check {b['seconds']:.1f}s (whole smoke {wall:.1f}s); screenshot kept at {shot}")


def test_foundry_stopped_is_named_with_the_start_fix(up):
    assert up.invoke("foundry.stop").returncode == 0
    try:
        rc, report, _ = smoke(up, "--json")
        assert rc == 1
        c = assert_broken_link(report, "foundry", "./stack up")
        assert "not found" in c["detail"]
        assert checks(report)["chat"]["status"] == "skip"
    finally:
        restore_with_up(up)


def test_unloaded_model_is_named_with_the_load_fix(up):
    view, why = foundry_link.current(stack_of(up))
    assert view is not None, why
    model = view.chat_models[0]
    alias = re.sub(r"-generic-(cpu|gpu)(:\d+)?$", "", model)
    base = view.root_url + "/catalogs/local/models"
    try:
        # The embedded server's watchdog reloads an unloaded model within 30 s; if it
        # wins the race before smoke looks, unload again (bounded).
        for _ in range(3):
            httpx.get(f"{base}/unload/{alias}", timeout=30).raise_for_status()
            rc, report, _ = smoke(up, "--json")
            if checks(report)["foundry"]["status"] == "fail":
                break
        assert rc == 1
        c = assert_broken_link(report, "foundry", "load")
        assert "no chat model loaded" in c["detail"]
    finally:
        httpx.get(f"{base}/load/{alias}", timeout=120)
        wait_smoke_passes(up)


def test_exporter_stopped_is_named_with_its_fix(up):
    assert up.compose("stop", "exporter").returncode == 0
    try:
        rc, report, _ = smoke(up, "--json")
        assert rc == 1
        c = assert_broken_link(report, "exporter", "./stack logs exporter")
        assert "does not answer" in c["detail"]
        assert all(checks(report)[n]["status"] == "ok" for n in ("foundry", "chat", "chat-stream"))
    finally:
        restore_with_up(up)


def test_prometheus_stopped_is_named_with_its_fix(up):
    assert up.compose("stop", "prometheus").returncode == 0
    try:
        rc, report, _ = smoke(up, "--json")
        assert rc == 1
        c = assert_broken_link(report, "prometheus", "./stack logs prometheus")
        assert "does not answer" in c["detail"]
        assert checks(report)["exporter"]["status"] == "ok"
    finally:
        restore_with_up(up)


def test_stored_connection_on_a_wrong_port_is_named_with_the_reconcile_fix(up):
    ui = signin(up)
    cfg = ui.openai_config()
    right = cfg["OPENAI_API_BASE_URLS"][0]
    wrong = re.sub(r":\d+/", f":{free_port()}/", right, count=1)
    ui.update_openai_config({**cfg, "OPENAI_API_BASE_URLS": [wrong, *cfg["OPENAI_API_BASE_URLS"][1:]]})
    try:
        rc, report, _ = smoke(up, "--json")
        assert rc == 1
        c = assert_broken_link(report, "connection", "./stack up")
        assert wrong in c["detail"] and right in c["detail"] and "/openai/verify" in c["detail"]
    finally:
        restore_with_up(up)
    assert signin(up).openai_config()["OPENAI_API_BASE_URLS"][0] == right

