"""All terminal rendering: one console with a few verbs (Library code takes a
Reporter so tests can capture what a user would see, or ``Reporter.quiet()``),
and the renderings of command results (check reports, the status table).

Renderers are pure: they build lines or rich renderables; outside text is escaped."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # types only: the renderers take results, they call nothing
    from stackctl.checks.runner import Report
    from stackctl.lifecycle.ops import StatusReport


class Reporter:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=False, highlight=False, soft_wrap=True)

    @classmethod
    def quiet(cls) -> Reporter:
        return cls(Console(file=io.StringIO(), highlight=False))

    # Messages carry outside text (paths, server errors): printed as text, never as markup.
    def step(self, msg: str) -> None:
        self.console.print(f"[bold cyan]»[/] {escape(msg)}")

    def ok(self, msg: str) -> None:
        self.console.print(f"[green]✓[/] {escape(msg)}")

    def warn(self, msg: str) -> None:
        self.console.print(f"[yellow]![/] {escape(msg)}")

    def fail(self, msg: str) -> None:
        self.console.print(f"[red]✗[/] {escape(msg)}")

    def info(self, msg: str = "") -> None:
        self.console.print(escape(msg))

    @contextmanager
    def status(self, msg: str) -> Iterator[object]:
        """A spinner line for a wait; ``.update(text)`` changes it. Plain lines when not a TTY."""
        if self.console.is_terminal:
            with self.console.status(msg) as st:
                yield st
        else:
            self.console.print(f"… {escape(msg)}")
            yield _PlainStatus(self.console)


def error_line(msg: str) -> None:
    """The one error line of a failed command: ``error: <message>`` on stderr."""
    print(f"error: {msg}", file=sys.stderr, flush=True)


class _PlainStatus:
    """Non-TTY stand-in for rich's status: prints a line only when the text changes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.last = ""

    def update(self, text: str) -> None:
        if text != self.last:
            self.last = text
            self.console.print(f"  {escape(text)}")
            sys.stdout.flush()


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


def status_table(rep: StatusReport) -> Table:
    t = Table(title=f"stack {rep.stack.project}", title_justify="left")
    for col in ("service", "state", "health", "restarts", "url"):
        t.add_column(col)
    for svc in rep.stack.services:
        s = rep.services.get(svc)
        url = rep.urls.get(svc, "")
        if s is None:
            t.add_row(svc, "[red]absent[/]", "", "", url)
        else:
            color = "green" if s.ok else "red"
            t.add_row(svc, f"[{color}]{s.state}[/]", s.health, str(s.restarts), url)
    if rep.foundry:
        f = rep.foundry
        t.add_row("foundry (host)", "[green]serving[/]", f.generation, "",
                  escape(f"{f.root_url}  models: {', '.join(f.chat_models) or 'none loaded'}"))
    else:
        t.add_row("foundry (host)", "[red]not found[/]", "", "", escape(rep.foundry_reason or ""))
    return t
