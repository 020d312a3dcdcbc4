"""`invoke smoke --browser`: a person's path through Open WebUI in a real browser.

Playwright (the ``browser`` extra) drives Debian's chromium when present, else
Playwright's own: sign in with the stack's admin credentials through the form,
choose the model, send a message, and wait until the assistant's reply has
streamed in (Open WebUI streams it over its socket.io websocket as many
``*:completion`` events and ends with one carrying ``done``). The screenshot is
saved whether the check passes or not, so a failure can be seen.

Invariants: the page's websocket frames are the evidence of streaming, never
the clock; every wait has a deadline; an error Open WebUI shows in the reply
becomes the failure detail.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stackctl.checks.context import Ctx, need_model
from stackctl.checks.runner import Check, Failed
from stackctl.config.settings import OPENWEBUI
from stackctl.config.stack import ROOT
from stackctl.console import Reporter, cmd
from stackctl.errors import StackError

CHROMIUM_PATHS = (Path("/usr/lib/chromium/chromium"), Path("/usr/bin/chromium"))
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")
MESSAGE = "Hello from the stack's smoke check"
REPLY_TIMEOUT_MS = 120_000
_STREAM_EVENTS = ("chat:completion", "response:completion")

FIX_TOOLS = ("the prompt Open WebUI builds is larger than the model's context: Admin Panel → "
             "Settings → Models → the model → Advanced Params → Function Calling: Legacy "
             "(stops the built-in tools being sent with every message), or use a model with a "
             "larger context")


@dataclass(frozen=True)
class StreamEvent:
    kind: str
    done: bool
    error: str | None


def parse_frame(frame: str | bytes) -> StreamEvent | None:
    """A socket.io ``42["events", {...}]`` frame of a chat reply, else None. Pure."""
    text = frame.decode(errors="replace") if isinstance(frame, bytes) else frame
    if not text.startswith("42"):
        return None
    try:
        name, payload = json.loads(text[2:])[:2]
    except (ValueError, TypeError):
        return None
    data = payload.get("data") if name == "events" and isinstance(payload, dict) else None
    if not isinstance(data, dict) or data.get("type") not in _STREAM_EVENTS:
        return None
    inner = data.get("data") if isinstance(data.get("data"), dict) else {}
    err = inner.get("error")
    if isinstance(err, dict):
        err = err.get("content") or err.get("message") or json.dumps(err)
    return StreamEvent(data["type"], bool(inner.get("done")), str(err) if err else None)


def reply_verdict(events: list[StreamEvent]) -> tuple[bool, str]:
    """(streamed and finished, why not). Pure."""
    errors = [e.error for e in events if e.error]
    if errors:
        return False, f"Open WebUI showed an error instead of a reply: {errors[0][:300]}"
    if not any(e.done for e in events):
        return False, f"the reply never finished ({len(events)} stream events, no done)"
    if sum(not e.done for e in events) < 2:
        return False, f"the reply was not streamed ({len(events)} stream events)"
    return True, ""


def chromium() -> str | None:
    return next((str(p) for p in CHROMIUM_PATHS if p.exists()), None)


def browser_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The `browser` extra of the project (the one place its pins live)."""
    import tomllib

    return tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["browser"]


def ensure_playwright(reporter: Reporter, *, have=lambda: importlib.util.find_spec("playwright") is not None,
                      run=subprocess.run, python: str = sys.executable) -> None:
    """Install the `browser` extra into the running venv when Playwright is missing,
    saying so in one line; when that fails, ONE StackError whose command works as printed."""
    if have():
        return
    reqs = browser_requirements()
    argv = [python, "-m", "pip", "install", "-q", *reqs]
    reporter.step(f"installing Playwright for --browser into {Path(python).parent.parent} "
                  f"(the project's browser extra: {', '.join(reqs)})")
    done = run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise StackError(f"installing Playwright failed ({last[0][:200]}) — check PyPI access, then "
                         f"run `{shlex.join(argv[:4] + reqs)}` and retry", exit_code=2)
    importlib.invalidate_caches()


def check(screenshot: Path) -> Check:
    return Check("browser", lambda ctx: run_browser(ctx, screenshot), need_model)


def run_browser(ctx: Ctx, screenshot: Path) -> str:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise Failed("Playwright is not installed",
                     f"`{shlex.join([sys.executable, '-m', 'pip', 'install', *browser_requirements()])}`") from None
    url = ctx.stack.host_url(OPENWEBUI.port_key)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    events: list[StreamEvent] = []
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=chromium(), args=list(CHROMIUM_ARGS))
        except PlaywrightError as err:
            raise Failed(f"cannot start chromium: {str(err).splitlines()[0]}",
                         f"`{shlex.join([sys.executable, '-m', 'playwright', 'install', 'chromium'])}` "
                         "(or your system's chromium package)") from None
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("websocket", lambda ws: ws.on("framereceived", lambda f: _keep(events, f)))
            problems: list[str] = []
            page.on("response", lambda r: problems.append(f"HTTP {r.status} {_path(r.url)}")
                    if r.status >= 500 else None)
            page.on("requestfailed", lambda r: problems.append(f"{_path(r.url)} {r.failure}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {str(e)[:160]}"))
            try:
                reply = _chat(page, url, ctx, events)
            finally:
                _shoot(page, screenshot)
        except PlaywrightError as err:
            seen = f"; the page saw: {'; '.join(problems[:3])}" if problems else ""
            raise Failed(f"in the browser at {url}: {str(err).splitlines()[0]}{seen} "
                         f"(screenshot {screenshot})", f"`{cmd('logs open-webui')}`; look at the screenshot") from None
        finally:
            browser.close()
    ok, why = reply_verdict(events)
    if not ok:
        fix = FIX_TOOLS if "context length" in why else f"`{cmd('logs open-webui')}`; look at the screenshot"
        raise Failed(f"{why} (screenshot {screenshot})", fix)
    if not reply:
        raise Failed(f"the assistant reply is empty on the page (screenshot {screenshot})",
                     f"`{cmd('logs open-webui')}`")
    one = " ".join(reply.split())
    return (f"signed in at {url}, chose {ctx.model}, reply streamed in "
            f"{sum(not e.done for e in events)} events: {one[:40]!r}…; screenshot {screenshot}")


def _path(url: str) -> str:
    return urlsplit(url).path[:80]


def _keep(events: list[StreamEvent], frame: Any) -> None:
    ev = parse_frame(frame)
    if ev is not None:
        events.append(ev)


def _chat(page: Any, url: str, ctx: Ctx, events: list[StreamEvent]) -> str:
    env = ctx.stack.env
    page.goto(url + "/auth")
    page.fill("input[name=email]", env["WEBUI_ADMIN_EMAIL"])
    page.fill("input[name=password]", env["WEBUI_ADMIN_PASSWORD"])
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("#chat-input", timeout=30_000)
    _dismiss_release_notes(page)
    page.click("#model-selector-model-button")
    page.click(f"button[aria-label='Select {ctx.model} model']", timeout=10_000)
    page.locator("#chat-input").click()
    page.keyboard.type(MESSAGE)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('.user-message') !== null", timeout=30_000)
    deadline_ms, step = REPLY_TIMEOUT_MS, 100
    while not any(e.done or e.error for e in events) and deadline_ms > 0:
        page.wait_for_timeout(step)  # lets Playwright deliver websocket frames
        deadline_ms -= step
    if any(e.error for e in events) or not any(e.done for e in events):
        return ""  # reply_verdict names the problem
    page.wait_for_function(
        "() => { const c = document.querySelectorAll('#response-content-container');"
        " return c.length > 0 && c[c.length - 1].innerText.trim().length > 0; }", timeout=30_000)
    return page.evaluate(
        "() => { const c = document.querySelectorAll('#response-content-container');"
        " return c[c.length - 1].innerText; }")


def _dismiss_release_notes(page: Any) -> None:
    """Open WebUI greets each user once with release notes over the chat."""
    button = page.get_by_role("button", name="Okay, Let's Go!")
    try:
        button.wait_for(state="visible", timeout=2_500)
    except Exception:  # not shown: nothing to dismiss
        return
    button.click()


def _shoot(page: Any, path: Path) -> None:
    page.evaluate("() => { const m = document.querySelector('#messages-container'); if (m) m.scrollTop = 0; }")
    page.screenshot(path=str(path))
