"""Printing at the edge: one console, a few verbs, and the one error line.

Library code takes a Reporter so tests can capture what a user would see (or
``Reporter.quiet()``). Messages carry outside text and are printed as text, never
as rich markup. Results render themselves next to their types (checks/runner.py,
lifecycle/ops.py) as pure functions; this module only prints."""

from __future__ import annotations

import functools
import io
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape


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


def cmd(args: str = "") -> str:
    """The command line a user types for a stack command, as it works in their shell.

    The one spelling of every hint: ``./stack up`` on Linux/macOS (the bootstrap
    script), ``.\\stack up`` on Windows (stack.cmd; cmd.exe and PowerShell both run
    it, the gradlew/mvnw convention). From outside the project (the wrappers pass
    the caller's directory in STACK_CWD) it is the script's full path.
    """
    return f"{_stack_program()} {args}".strip()


@functools.cache
def _stack_program() -> str:
    windows = sys.platform == "win32"
    root = Path(__file__).resolve().parents[1]
    here = Path(os.environ.get("STACK_CWD") or os.getcwd())
    try:
        at_root = here.resolve() == root
    except OSError:
        at_root = False
    if at_root:
        return ".\\stack" if windows else "./stack"
    script = root / "stack"
    return (f'"{script}"' if " " in str(script) else str(script)) if windows else shlex.quote(str(script))


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

