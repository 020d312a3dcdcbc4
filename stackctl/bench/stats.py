"""Benchmark statistics: pure functions over measured samples.

Definitions (stated once, used by every report):
- latency   — request sent → last byte of the streamed answer, seconds;
- TTFT      — request sent → first chunk that carries answer content;
- tokens/s  — output tokens (the server's ``usage.completion_tokens``) divided by
  latency, summed over successful requests (end-to-end rate a user sees);
- decode tokens/s — the same divided by (latency − TTFT): generation speed alone;
- percentiles — linear interpolation between closest ranks (numpy's default):
  rank = p/100 · (n − 1);
- errors    — failed requests; they are excluded from every timing statistic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    model: str
    via: str               # "direct" (Foundry Local) or "openwebui"
    prompt_id: str
    round: int
    latency_s: float | None = None
    ttft_s: float | None = None
    output_tokens: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Stats:
    model: str
    via: str
    requests: int
    errors: int
    latency_mean: float | None
    latency_p50: float | None
    latency_p95: float | None
    ttft_mean: float | None
    ttft_p95: float | None
    tokens_per_s: float | None
    decode_tokens_per_s: float | None
    first_error: str | None = None


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear-interpolated percentile (numpy 'linear'); None for no values."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is not within 0..100")
    if not values:
        return None
    xs = sorted(values)
    rank = p / 100 * (len(xs) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def rate(tokens: int, seconds: float) -> float | None:
    return tokens / seconds if seconds > 0 else None


def summarize(model: str, via: str, samples: Sequence[Sample]) -> Stats:
    ok = [s for s in samples if s.ok and s.latency_s is not None]
    lat = [s.latency_s for s in ok]
    ttft = [s.ttft_s for s in ok if s.ttft_s is not None]
    tokens = sum(s.output_tokens or 0 for s in ok)
    decode = math.fsum(s.latency_s - s.ttft_s for s in ok if s.ttft_s is not None)
    errors = [s for s in samples if not s.ok]
    return Stats(
        model=model, via=via, requests=len(samples), errors=len(errors),
        latency_mean=mean(lat), latency_p50=percentile(lat, 50), latency_p95=percentile(lat, 95),
        ttft_mean=mean(ttft), ttft_p95=percentile(ttft, 95),
        tokens_per_s=rate(tokens, math.fsum(lat)) if ok else None,
        decode_tokens_per_s=rate(tokens, decode) if ok else None,
        first_error=errors[0].error if errors else None,
    )


def overhead_ratio(direct: Stats | None, proxied: Stats | None) -> float | None:
    """Mean latency through Open WebUI ÷ mean latency direct (1.10 = 10 % slower)."""
    if not direct or not proxied or not direct.latency_mean or proxied.latency_mean is None:
        return None
    return proxied.latency_mean / direct.latency_mean
