"""When real traffic was last seen: what the exporter's canary asks before each round.

Real traffic = chat and embedding requests that do not carry the exporter's
canary mark (``foundry_exporter.probes.activity.CANARY_HEADER``). The proxy
calls ``begin``/``end`` with the monotonic times it already took for its
metrics, so this costs two integer updates per request and nothing per token.
Only the event loop thread touches it. The report is the contract's JSON
(``activity_doc``): idle time on this process's monotonic clock, so the
exporter never compares two hosts' wall clocks.
"""

from __future__ import annotations

from foundry_exporter.probes.activity import activity_doc


class Activity:
    def __init__(self) -> None:
        self.in_flight = 0
        self.last_seen: float | None = None  # monotonic: start or end of a real request

    def begin(self, now: float) -> None:
        self.in_flight += 1
        self.last_seen = now

    def end(self, now: float) -> None:
        self.in_flight -= 1
        self.last_seen = now

    def report(self, now: float, wall: float) -> dict:
        """The JSON body of ``GET /gateway/activity`` at monotonic ``now`` / unix ``wall``."""
        if self.last_seen is None:
            return activity_doc(self.in_flight, None, None)
        idle = 0.0 if self.in_flight else max(0.0, now - self.last_seen)
        return activity_doc(self.in_flight, round(idle, 3), round(wall - idle, 3))
