"""Printing at the edge: one console, a few verbs. Library code takes a Reporter
so tests can capture what a user would see (or pass ``Reporter.quiet()``)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


class Reporter:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=False, highlight=False, soft_wrap=True)

    @classmethod
    def quiet(cls) -> Reporter:
        return cls(Console(file=io.StringIO(), highlight=False))

    def step(self, msg: str) -> None:
        self.console.print(f"[bold cyan]»[/] {msg}")

    def ok(self, msg: str) -> None:
        self.console.print(f"[green]✓[/] {msg}")

    def warn(self, msg: str) -> None:
        self.console.print(f"[yellow]![/] {msg}")

    def fail(self, msg: str) -> None:
        self.console.print(f"[red]✗[/] {msg}")

    def info(self, msg: str = "") -> None:
        self.console.print(msg)

    @contextmanager
    def status(self, msg: str) -> Iterator[object]:
        """A spinner line for a wait; ``.update(text)`` changes it. Plain lines when not a TTY."""
        if self.console.is_terminal:
            with self.console.status(msg) as st:
                yield st
        else:
            self.console.print(f"… {msg}")
            yield _PlainStatus(self.console)


class _PlainStatus:
    """Non-TTY stand-in for rich's status: prints a line only when the text changes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.last = ""

    def update(self, text: str) -> None:
        if text != self.last:
            self.last = text
            self.console.print(f"  {text}")
            sys.stdout.flush()
