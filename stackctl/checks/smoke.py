"""`invoke smoke`: one pass along the whole path, each link a check with a verdict.

Order follows the data path (Foundry → Open WebUI → sign-in → connection →
models → chat → exporter → Prometheus → Grafana → browser). Each check returns
a frozen :class:`Result` (ok / fail / skip, seconds, detail, fix). A check is
skipped only when a link it stands on is broken, so its verdict could not mean
anything (no token → no chat; no loaded model → no chat); the observability
checks never depend on the chat path. Verdicts, rendering and the JSON shape
are pure functions over results; the checks themselves live in smoke_checks.py
and smoke_observe.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.markup import escape

from stackctl.config.stack import Stack

OK, FAIL, SKIP = "ok", "fail", "skip"
_SYMBOL = {OK: "✓", FAIL: "✗", SKIP: "–"}
_COLOR = {OK: "green", FAIL: "red", SKIP: "yellow"}


@dataclass(frozen=True)
class Result:
    name: str
    status: str  # ok | fail | skip
    seconds: float
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAIL


class Failed(Exception):
    """Raised by a check: ``detail`` says what is broken, ``fix`` what to run."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


class Skipped(Exception):
    """Raised by a check that does not apply here (e.g. Grafana not in the profiles)."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[object], str]          # returns the detail of a pass
    needs: Callable[[object], str | None] = lambda ctx: None  # skip reason, or None


@dataclass(frozen=True)
class Report:
    results: tuple[Result, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def first_failure(self) -> Result | None:
        return next((r for r in self.results if r.status == FAIL), None)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def as_dict(self) -> dict:
        first = self.first_failure
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "first_failure": first.name if first else None,
            "checks": [{**asdict(r), "seconds": round(r.seconds, 3)} for r in self.results],
        }


def run_checks(checks: Sequence[Check], ctx: object,
               clock: Callable[[], float] = time.perf_counter) -> Report:
    """Run ``checks`` in order; every exception stops at the check boundary."""
    t0 = clock()
    results: list[Result] = []
    for chk in checks:
        reason = chk.needs(ctx)
        if reason:
            results.append(Result(chk.name, SKIP, 0.0, f"skipped: {reason}"))
            continue
        start = clock()
        try:
            detail, status, fix = chk.run(ctx), OK, ""
        except Failed as err:
            detail, status, fix = err.detail, FAIL, err.fix
        except Skipped as err:
            detail, status, fix = f"skipped: {err}", SKIP, ""
        except Exception as err:  # one broken link must not hide the others
            detail = f"{type(err).__name__}: {str(err).strip()[:300]}"
            status, fix = FAIL, f"`invoke doctor`; `invoke logs` for the service behind {chk.name}"
        results.append(Result(chk.name, status, clock() - start, detail, fix))
    return Report(tuple(results), clock() - t0)


def render(report: Report, *, color: bool = False) -> list[str]:
    """One line per check (✓/✗/–, name, time, detail), a fix line under each
    failure, and a total line naming the first broken link. Pure."""
    width = max((len(r.name) for r in report.results), default=0)
    lines: list[str] = []
    for r in report.results:
        sym = _SYMBOL[r.status]
        text = f"{r.name:<{width}}  {r.seconds:5.2f}s  {r.detail}"
        lines.append(f"[{_COLOR[r.status]}]{sym}[/] {escape(text)}" if color else f"{sym} {text}")
        if r.status == FAIL and r.fix:
            fix = f"{'':<{width}}  fix: {r.fix}"
            lines.append(f"  {escape(fix)}" if color else f"  {fix}")
    first = report.first_failure
    failed = sum(r.status == FAIL for r in report.results)
    total = (f"smoke passed in {report.seconds:.1f}s" if first is None else
             f"smoke FAILED in {report.seconds:.1f}s: {failed} check(s) failed; "
             f"first broken link: {first.name} — {first.fix or first.detail}")
    lines.append(escape(total) if color else total)
    return lines


# Where `--browser` saves its screenshot unless told otherwise, relative to the
# project root (the README names it; CI keeps it as an artifact).
DEFAULT_SCREENSHOT = Path("artifacts") / "smoke-browser.png"


@dataclass(frozen=True)
class Options:
    browser: bool = False
    screenshot: Path | None = None  # None: DEFAULT_SCREENSHOT under the project root


def run_smoke(stack: Stack, options: Options | None = None, http=None) -> Report:
    """Every check against the running stack described by ``stack`` (.env)."""
    from stackctl.checks import chat as smoke_checks
    from stackctl.checks import observe as smoke_observe

    opts = options or Options()
    ctx = smoke_checks.Ctx(stack=stack, http=http)
    try:
        checks = [*smoke_checks.CHECKS, *smoke_observe.CHECKS]
        if opts.browser:
            from stackctl.checks import browser

            shot = opts.screenshot.resolve() if opts.screenshot else stack.root / DEFAULT_SCREENSHOT
            checks.append(browser.check(shot))
        return run_checks(checks, ctx)
    finally:
        ctx.close()
