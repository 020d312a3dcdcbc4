"""Waiting on conditions, never on the clock alone.

``wait_healthy`` polls the engine for the project's containers until every
expected service is running and healthy, or one of them fails for good (exited,
unhealthy), or the deadline passes — then says which service and what to run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from stackctl.console import cmd
from stackctl.docker.engine import ServiceState
from stackctl.errors import StackError

Fetch = Callable[[], dict[str, ServiceState]]
Report = Callable[[dict[str, ServiceState]], None]


def verdict(expected: Iterable[str], states: dict[str, ServiceState]) -> tuple[bool, str | None]:
    """(all healthy, fatal problem or None). Pure."""
    all_ok = True
    for svc in expected:
        s = states.get(svc)
        if s is None:
            all_ok = False
            continue
        if s.health == "unhealthy":
            return False, f"{svc} is unhealthy — see `{cmd(f'logs {svc}')}`"
        if s.state in ("exited", "dead"):
            return False, f"{svc} exited — see `{cmd(f'logs {svc}')}`"
        if not s.ok:
            all_ok = False
    return all_ok, None


def wait_healthy(expected: Iterable[str], fetch: Fetch, *, timeout: float = 300.0,
                 interval: float = 1.0, report: Report | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, ServiceState]:
    expected = list(expected)
    deadline = clock() + timeout
    while True:
        states = fetch()
        if report:
            report(states)
        ok, fatal = verdict(expected, states)
        if ok:
            return states
        if fatal:
            raise StackError(fatal)
        if clock() >= deadline:
            waiting = [f"{s} ({_describe(states.get(s))})" for s in expected
                       if not (states.get(s) and states[s].ok)]
            raise StackError(
                f"not healthy after {timeout:.0f}s: {', '.join(waiting)} — "
                f"see `{cmd(f'logs {waiting[0].split()[0]}')}` and `{cmd('doctor')}`"
            )
        sleep(interval)


def _describe(s: ServiceState | None) -> str:
    if s is None:
        return "no container"
    return s.state if s.health == "none" else f"{s.state}, {s.health}"
