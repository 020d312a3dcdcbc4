"""The one check framework of `doctor` and `smoke`: checks in order, each to Results.

A check either returns the detail of a pass (one result under its own name) or
yields several Results (doctor's findings); it raises ``Failed(detail, fix)`` or
``Skipped(reason)``. Every other exception stops at the check boundary and becomes
a failed result, so one broken link never hides the others. Pure over its inputs;
imports no sibling module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rich.markup import escape

from stackctl.console import cmd
from stackctl.errors import StackError

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass(frozen=True)
class Result:
    name: str
    status: str  # ok | warn | fail | skip
    seconds: float
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAIL


def ok(name: str, detail: str) -> Result:
    return Result(name, OK, 0.0, detail)


def warn(name: str, detail: str, fix: str) -> Result:
    return Result(name, WARN, 0.0, detail, fix)


def fail(name: str, detail: str, fix: str) -> Result:
    return Result(name, FAIL, 0.0, detail, fix)


class Failed(Exception):
    """Raised by a check: ``detail`` says what is broken, ``fix`` what to run."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


class Warned(Failed):
    """Raised by a check whose link works but is not proven yet (a warning, not a failure)."""


class Skipped(Exception):
    """Raised by a check that does not apply here (e.g. Grafana not in the profiles)."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Any], str | Iterable[Result]]  # the detail of a pass, or Results
    needs: Callable[[Any], str | None] = lambda ctx: None  # skip reason, or None


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

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

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
        results.extend(_run_one(chk, ctx, clock))
    return Report(tuple(results), clock() - t0)


def _run_one(chk: Check, ctx: object, clock: Callable[[], float]) -> list[Result]:
    out: list[Result] = []
    start = clock()
    try:
        got = chk.run(ctx)
        if isinstance(got, str):
            return [Result(chk.name, OK, clock() - start, got)]
        for r in got:  # a generator: time each result from the previous one
            now = clock()
            out.append(Result(r.name, r.status, now - start, r.detail, r.fix))
            start = now
        return out
    except Warned as err:
        status, detail, fix = WARN, err.detail, err.fix
    except Failed as err:
        status, detail, fix = FAIL, err.detail, err.fix
    except Skipped as err:
        status, detail, fix = SKIP, f"skipped: {err}", ""
    except StackError as err:
        msg, _, fix = str(err).partition(" — ")
        status, detail, fix = FAIL, msg, fix or "see the message"
    except Exception as err:  # one broken link must not hide the others
        status, detail = FAIL, f"{type(err).__name__}: {str(err).strip()[:300]}"
        fix = f"`{cmd('doctor')}`; `{cmd('logs')}` for the service behind {chk.name}"
    out.append(Result(chk.name, status, clock() - start, detail, fix))
    return out


_SYMBOL = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "–"}
_COLOR = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "yellow"}


def check_lines(report: Report, total: str, *, color: bool = False) -> list[str]:
    """One line per result (symbol, name, time, detail), a fix line under each
    failure and warning, then ``total``. Pure."""
    width = max((len(r.name) for r in report.results), default=0)
    lines: list[str] = []
    for r in report.results:
        sym = _SYMBOL[r.status]
        text = f"{r.name:<{width}}  {r.seconds:5.2f}s  {r.detail}"
        lines.append(f"[{_COLOR[r.status]}]{sym}[/] {escape(text)}" if color else f"{sym} {text}")
        if r.status in ("fail", "warn") and r.fix:
            fix = f"{'':<{width}}  fix: {r.fix}"
            lines.append(f"  {escape(fix)}" if color else f"  {fix}")
    lines.append(escape(total) if color else total)
    return lines
