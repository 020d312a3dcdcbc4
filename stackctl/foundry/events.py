"""Startup events the server process sends to the `serve` that launched it.

One JSON object per line on a pipe inherited as ``--status-fd``. The server
closes the pipe once it is ready or has failed; after that it writes only to
its log, so the launcher may exit at any time.

Kinds: ``stage`` (text), ``progress`` (percent 0-100 of a download),
``ready`` (the ServerState as a dict), ``error`` (one-line message + exit code).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

STAGE, PROGRESS, READY, ERROR = "stage", "progress", "ready", "error"


@dataclass(frozen=True)
class Event:
    kind: str
    message: str = ""
    percent: float = 0.0
    code: int = 1
    state: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return (json.dumps({
            "kind": self.kind, "message": self.message, "percent": self.percent,
            "code": self.code, "state": self.state,
        }) + "\n").encode()


def decode(line: bytes) -> Event | None:
    """One line -> Event; None for anything that is not an event (ignored)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("kind") not in (STAGE, PROGRESS, READY, ERROR):
        return None
    return Event(
        kind=data["kind"], message=str(data.get("message", "")),
        percent=float(data.get("percent") or 0.0), code=int(data.get("code") or 1),
        state=data.get("state") or {},
    )
