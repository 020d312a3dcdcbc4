"""Follow a Foundry Local that came back on another port (issue 15, "nothing left dead").

Foundry Local's service picks a new port on every start unless pinned (foundry-local
#424, #933). When the stack found a user's own Foundry through its CLI, nothing pins
it; so the gateway, which runs on the host's network, re-finds it itself: when a
request cannot connect to the upstream (refused — not a timeout, not an error
answer), it lists the host's loopback TCP listeners (``/proc/net/tcp``, ``tcp6``:
with host networking they are the host's) and asks each, at most once per
``MIN_INTERVAL_S``, whether it is a Foundry Local:

- ``GET /status`` (SDK and new CLI) or ``GET /openai/status`` (classic) answers 200, and
- its loaded-model listing at the upstream's own path answers a model list the
  exporter's parser accepts.

Among those, one whose loaded chat models overlap the last list the gateway served
wins; else a lone candidate; several strangers are ambiguous and none is taken
(logged). Then the request is sent again to the new port — it had not reached any
upstream, so nothing is duplicated.

Invariants: only when enabled (``follow``: the stack sets it only for a Foundry it
discovered through the CLI, never for an explicit ``FOUNDRY_LOCAL_ENDPOINT``); only a
loopback upstream; only GETs of those status and listing routes; never the upstream's
key (the probes carry no Authorization); the gateway's own ports are skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from foundry_exporter.probes.listing import chat_candidates, parse_model_list

from ..config import Limits, Timeouts
from .connection import UpstreamClient, UpstreamError
from .singleflight import SingleFlight

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 2.0        # between two scans, however many requests fail meanwhile
PROBE_TIMEOUTS = Timeouts(connect=0.5, first_byte=1.5, idle=1.5, total=2.0)
PROBE_LIMITS = Limits(max_response_bytes=1 << 20)
STATUS_PATHS = ("/status", "/openai/status")
_LISTEN = "0A"
# Local addresses a loopback client reaches: 127.0.0.1 and 0.0.0.0 (little-endian hex in
# /proc/net/tcp), ::1, :: and their IPv4-mapped forms (/proc/net/tcp6).
_V4_REACHABLE = frozenset({"0100007F", "00000000"})
_V6_REACHABLE = frozenset({
    "00000000000000000000000001000000",      # ::1
    "00000000000000000000000000000000",      # ::
    "0000000000000000FFFF00000100007F",      # ::ffff:127.0.0.1
    "0000000000000000FFFF000000000000",      # ::ffff:0.0.0.0
})


def listening_ports(tables: Iterable[str]) -> list[int]:
    """Ports listening where a loopback client reaches them, from the text of
    /proc/net/tcp and /proc/net/tcp6 (sorted, unique). Pure."""
    ports: set[int] = set()
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != _LISTEN:
                continue
            address, _, port = fields[1].partition(":")
            if address.upper() in _V4_REACHABLE | _V6_REACHABLE:
                try:
                    ports.add(int(port, 16))
                except ValueError:
                    continue
    return sorted(ports)


def read_tables(proc: Path = Path("/proc/net")) -> list[str]:
    out = []
    for name in ("tcp", "tcp6"):
        try:
            out.append((proc / name).read_text())
        except OSError:
            continue
    return out


def choose(candidates: dict[int, tuple[str, ...]], known: tuple[str, ...]) -> int | None:
    """The port to move to: overlap with the models served before, else a lone candidate. Pure."""
    overlapping = sorted(p for p, models in candidates.items() if set(models) & set(known))
    if overlapping:
        return overlapping[0]
    if len(candidates) == 1:
        return next(iter(candidates))
    return None


class Follower:
    """Re-finds the upstream's port for ``client`` (see the module docstring)."""

    def __init__(self, client: UpstreamClient, listing_targets: tuple[str, ...],
                 known: Callable[[], tuple[str, ...]], *, on_move: Callable[[], None] = lambda: None,
                 tables: Callable[[], list[str]] = read_tables, clock=time.monotonic) -> None:
        self.client, self.listing_targets, self.known = client, listing_targets, known
        self.on_move, self.tables, self.clock = on_move, tables, clock
        self.skip_ports: set[int] = set()   # the gateway's own listeners (set once bound)
        self._last = -1e18
        self._scan: SingleFlight[bool] = SingleFlight()

    async def relocate(self) -> bool:
        """True when the upstream now answers on another port (the client was moved)."""
        if not self._scan.running:
            if self.clock() - self._last < MIN_INTERVAL_S:
                return False
            self._last = self.clock()
        return await self._scan.run(self._relocate)

    async def _relocate(self) -> bool:
        old = self.client.port
        ports = [p for p in listening_ports(self.tables()) if p != old and p not in self.skip_ports]
        found = await asyncio.gather(*(self._identify(p) for p in ports))
        candidates = {p: models for p, models in zip(ports, found, strict=True) if models is not None}
        port = choose(candidates, self.known())
        if port is None:
            if len(candidates) > 1:
                log.warning("upstream :%d refuses connections; %d Foundry-like servers listen "
                            "(ports %s) and none serves the models seen before: not guessing",
                            old, len(candidates), ", ".join(map(str, sorted(candidates))))
            else:
                log.warning("upstream :%d refuses connections and no Foundry Local listens on "
                            "loopback", old)
            return False
        self.client.move_to(port)
        self.on_move()
        log.warning("upstream moved: Foundry Local answers on :%d now (was :%d)", port, old)
        return True

    async def _identify(self, port: int) -> tuple[str, ...] | None:
        """The loaded chat models of a Foundry Local on ``port``, or None if it is not one."""
        probe = UpstreamClient(f"http://{self.client.host}:{port}{self.client.base_path}", None,
                               PROBE_TIMEOUTS, PROBE_LIMITS)
        try:
            for path in STATUS_PATHS:
                if await _answers(probe, path):
                    break
            else:
                return None
            for target in self.listing_targets:
                status, body = await _get(probe, target)
                if status == 200:
                    return chat_candidates(parse_model_list(json.loads(body)))
            return None
        except (UpstreamError, ValueError):
            return None
        finally:
            probe.close()


async def _get(probe: UpstreamClient, target: str) -> tuple[int, bytes]:
    exchange = await probe.send("GET", target, [(b"accept", b"application/json")])
    try:
        return exchange.status, await exchange.read_all()
    finally:
        exchange.close()


async def _answers(probe: UpstreamClient, path: str) -> bool:
    """The status route answers 200 with JSON (its path is absolute: not under the base)."""
    status, body = await _get(probe, path)
    if status != 200:
        return False
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
