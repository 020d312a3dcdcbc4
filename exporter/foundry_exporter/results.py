"""Frozen results of one probe: what the collector will render, and nothing else.

A probe never raises; it returns exactly one :class:`ProbeResult`. On failure
``reason`` is one of ``metrics.FAILURE_REASONS`` (a closed set), so a broken
target becomes data (``up 0`` + a failure counter), never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

from .metrics import CANARY_SKIP_REASONS, FAILURE_REASONS


@dataclass(frozen=True)
class ChatStats:
    """One chat canary's measurements (seconds, tokens)."""

    model: str
    ttft: float               # request sent -> first chunk carrying content
    duration: float           # request sent -> end of stream
    generation: float         # first content chunk -> end of stream
    output_tokens: int | None  # from the usage block; None when the server sent none

    @property
    def tokens_per_second(self) -> float | None:
        if not self.output_tokens or self.generation <= 0:
            return None
        return self.output_tokens / self.generation


@dataclass(frozen=True)
class ProbeResult:
    target: str
    probe: str              # one of metrics.PROBES
    ok: bool
    duration: float         # seconds the probe took (monotonic clock)
    finished_at: float      # unix time (wall clock) the probe finished
    reason: str | None = None           # set iff not ok
    detail: str = ""                    # human hint for logs and /probe debug, never a label
    models: tuple[str, ...] | None = None  # models: listed ids; loaded: loaded ids
    chat: ChatStats | None = None       # chat: measurements (also on no_usage)

    def __post_init__(self) -> None:
        if self.ok != (self.reason is None):
            raise ValueError("reason must be set exactly when the probe failed")
        if self.reason is not None and self.reason not in FAILURE_REASONS:
            raise ValueError(f"reason {self.reason!r} is not in FAILURE_REASONS")


@dataclass(frozen=True)
class CanarySkip:
    """A due chat canary round that did not run, and why (not a probe: nothing was sent)."""

    target: str
    reason: str        # one of metrics.CANARY_SKIP_REASONS
    at: float          # unix time (wall clock) of the decision

    def __post_init__(self) -> None:
        if self.reason not in CANARY_SKIP_REASONS:
            raise ValueError(f"reason {self.reason!r} is not in CANARY_SKIP_REASONS")
