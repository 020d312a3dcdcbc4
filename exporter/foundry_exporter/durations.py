"""Duration strings as Prometheus writes them ("500ms", "30s", "2m", "1h").

A bare number means seconds. Pure functions only.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raises ValueError for anything but a positive duration."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _RE.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(value)
    if seconds <= 0:
        raise ValueError(value)
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest string :func:`parse_duration` reads back as ``seconds``."""
    if seconds < 1 or seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    return f"{int(seconds)}s"
