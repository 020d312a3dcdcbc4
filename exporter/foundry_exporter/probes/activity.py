"""The canary yields to real traffic: the stack gateway's activity report, and the verdict.

The contract between the exporter and the stack's gateway lives here once (the
gateway imports it):

- the exporter marks its chat canary with ``CANARY_HEADER: 1``; the gateway
  relays it but keeps it out of its real-traffic metrics and out of the
  activity report;
- ``GET {origin}/gateway/activity`` (key holders only) answers
  ``{"in_flight": n, "idle_seconds": s | null, "last_seen_unix": t | null}``:
  real chat/embedding requests in flight, and how long ago the last one was
  seen (on the gateway's monotonic clock, so the clocks of two containers
  never have to agree; ``null`` = none since the gateway started).

Before a canary round the exporter asks; ``canary_verdict`` (pure) skips the
round when a real request is in flight or was seen since the previous round.
Anything but a well-formed 200 (a plain Foundry answers 404, a gateway that is
down or a wrong key fails) means "not known": the canary runs as it always
did, and its own result says what is wrong. ``fetch_activity`` never raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..config import Target
from ..httpio import auth_headers, read_capped
from ..metrics import CANARY_SKIP_REASONS
from ..results import CanarySkip
from .base import ProbeContext

log = logging.getLogger(__name__)

CANARY_HEADER = "X-Foundry-Canary"
ACTIVITY_PATH = "/gateway/activity"
ACTIVITY_CAP = 4096          # the answer is a few dozen bytes
REAL_TRAFFIC = CANARY_SKIP_REASONS[0]


@dataclass(frozen=True)
class Activity:
    """Real (unmarked) chat and embedding traffic as the gateway saw it."""

    in_flight: int
    idle_seconds: float | None  # since real traffic was last seen; None: never


def activity_doc(in_flight: int, idle_seconds: float | None, last_seen_unix: float | None) -> dict:
    """The JSON body of ``GET /gateway/activity`` (the gateway's side of the contract)."""
    return {"in_flight": in_flight, "idle_seconds": idle_seconds, "last_seen_unix": last_seen_unix}


def parse_activity(doc: Any) -> Activity:
    """The exporter's side; ValueError for anything that is not the documented shape."""
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    n, idle = doc.get("in_flight"), doc.get("idle_seconds")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError("in_flight is not a count")
    if idle is not None and (isinstance(idle, bool) or not isinstance(idle, int | float)
                             or not math.isfinite(idle) or idle < 0):
        raise ValueError("idle_seconds is not a duration")
    return Activity(n, None if idle is None else float(idle))


# However busy users keep the gateway, the canary runs at least once every this many of
# its intervals: its numbers never get older than that (FoundryProbeStale waits 10 min,
# smoke 2 intervals + a yield), and a canary that has never run always runs — a fresh
# exporter next to a busy gateway would otherwise measure nothing at all.
MAX_YIELD_ROUNDS = 5


def canary_verdict(activity: Activity | None, window: float, *, ran_ago: float | None = 0.0,
                   max_yield: float = math.inf) -> str | None:
    """The skip reason for a due canary round, or None to run it. Pure.

    ``ran_ago``: seconds since the canary last ran (None: never — then it runs);
    ``max_yield``: once it last ran that long ago it runs whatever the traffic.

    ``window`` is the time since the previous canary round began (the canary
    interval, or a little more when cycles run late or the interval is not a
    multiple of the listing interval; one interval for the first round): the
    round is skipped when real traffic is in flight or was seen less than
    ``window`` seconds ago, i.e. during the interval since the previous round.
    """
    if activity is None or ran_ago is None or ran_ago >= max_yield:
        return None
    if activity.in_flight > 0:
        return REAL_TRAFFIC
    if activity.idle_seconds is not None and activity.idle_seconds < window:
        return REAL_TRAFFIC
    return None


def activity_url(url: str) -> str:
    """The gateway serves the report at its root, whatever path the target's URL has."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{ACTIVITY_PATH}"


async def fetch_activity(ctx: ProbeContext, target: Target,
                         budget: float | None = None) -> Activity | None:
    """The upstream's activity report, or None when it has none (or it cannot be read)."""
    timeout = target.module.timeout if budget is None else budget
    try:
        async with asyncio.timeout(timeout):
            async with ctx.client.stream("GET", activity_url(target.url), timeout=timeout,
                                         headers=auth_headers(target.module.api_key)) as response:
                if response.status_code != 200:
                    return None  # a plain Foundry (404), or a failure the canary will show
                body = await read_capped(response, ACTIVITY_CAP)
        return parse_activity(json.loads(body))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # not known: the canary runs, its own result tells the story
        log.debug("activity of %s not known: %s", target.name, exc)
        return None


async def canary_skip(ctx: ProbeContext, target: Target, window: float,
                      budget: float | None = None, *, ran_ago: float | None = 0.0,
                      max_yield: float = math.inf) -> CanarySkip | None:
    """Why this due canary round should not run, or None (also when nothing is known)."""
    if not target.module.canary.yield_to_traffic or ran_ago is None or ran_ago >= max_yield:
        return None  # never measured, or yielded long enough: run without asking
    reason = canary_verdict(await fetch_activity(ctx, target, budget), window,
                            ran_ago=ran_ago, max_yield=max_yield)
    return None if reason is None else CanarySkip(target.name, reason, ctx.clock.wall())
