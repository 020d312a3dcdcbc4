"""`smoke`: one pass along the whole path, each link a check with a verdict.

Order follows the data path (Foundry → Open WebUI → sign-in → connection →
models → chat → knowledge (when a collection exists) → exporter → Prometheus → Grafana → browser). A check is skipped
only when a link it stands on is broken, so its verdict could not mean anything
(no token → no chat; no loaded model → no chat); the observability checks never
depend on the chat path. The checks live in chat.py, observe.py and browser.py;
this module only chooses them and words the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stackctl.checks import chat, knowledge, observe
from stackctl.checks.context import Ctx
from stackctl.checks.runner import FAIL, Check, Report, check_lines, run_checks
from stackctl.config.stack import Stack
from stackctl.fleet import upstreams

# With a fleet file: each upstream in rotation, and one chat pinned to each (fleet/upstreams.py).
FLEET_CHECKS = (Check("upstreams", upstreams.check_upstreams),
                Check("chat via each upstream", upstreams.check_pinned_chats))

# Where `--browser` saves its screenshot unless told otherwise, relative to the
# project root (the README names it; CI keeps it as an artifact).
DEFAULT_SCREENSHOT = Path("artifacts") / "smoke-browser.png"


@dataclass(frozen=True)
class Options:
    browser: bool = False
    screenshot: Path | None = None  # None: DEFAULT_SCREENSHOT under the project root


def total(report: Report) -> str:
    first = report.first_failure
    if first is None:
        return f"smoke passed in {report.seconds:.1f}s"
    return (f"smoke FAILED in {report.seconds:.1f}s: {report.count(FAIL)} check(s) failed; "
            f"first broken link: {first.name} — {first.fix or first.detail}")


def render(report: Report, *, color: bool = False) -> list[str]:
    """One line per check (✓/✗/–, name, time, detail), a fix line under each
    failure, and a total line naming the first broken link. Pure."""
    return check_lines(report, total(report), color=color)


def run_smoke(stack: Stack, options: Options | None = None, http=None) -> Report:
    """Every check against the running stack described by ``stack`` (.env)."""
    opts = options or Options()
    ctx = Ctx(stack=stack, http=http)
    try:
        checks = [*chat.CHECKS, *FLEET_CHECKS, *knowledge.CHECKS, *observe.CHECKS]
        if opts.browser:
            from stackctl.checks import browser  # lazy: Playwright loads only for --browser

            shot = opts.screenshot.resolve() if opts.screenshot else stack.root / DEFAULT_SCREENSHOT
            checks.append(browser.check(shot))
        return run_checks(checks, ctx)
    finally:
        ctx.close()
