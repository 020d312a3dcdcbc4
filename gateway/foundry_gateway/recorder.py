"""The only writer of the gateway's metrics: instruments built from ``metrics.METRICS``.

Instruments live in the gateway's own registry (never the global one), are
created once at start-up, and are only touched from the event loop thread;
the scrape renders them in a worker thread (prometheus_client's instruments
are lock-protected). Label values are bounded here (see ``metrics``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.exposition import generate_latest

from . import __version__
from .metrics import (
    DURATION_BUCKETS,
    INTER_TOKEN_BUCKETS,
    MAX_LABEL_CHARS,
    MAX_MODELS,
    METRICS,
    NONE,
    OTHER,
    UNKNOWN_USER,
    UPSTREAM_ERROR_REASONS,
    metric,
)

_BUCKETS = {"inter_token_seconds": INTER_TOKEN_BUCKETS}


class BoundedLabel:
    """The first ``limit`` distinct values keep their name; later ones become ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str, admit: bool = True) -> str:
        value = value[:MAX_LABEL_CHARS]
        if value in self.seen:
            return value
        if admit and len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        return OTHER


def _build(registry: CollectorRegistry) -> dict[str, object]:
    out: dict[str, object] = {}
    for m in METRICS:
        short = m.name.removeprefix("foundry_gateway_")
        kw = {"name": m.name, "documentation": m.help, "labelnames": m.labels,
              "registry": registry}
        if m.type == "counter":
            out[short] = Counter(**kw)
        elif m.type == "gauge":
            out[short] = Gauge(**kw)
        elif m.type == "histogram":
            out[short] = Histogram(buckets=_BUCKETS.get(short, DURATION_BUCKETS), **kw)
        elif m.type == "info":  # the declared labels are the info's keys
            out[short] = Info(**{**kw, "labelnames": ()})
    return out


class Recorder:
    def __init__(self, max_users: int = 20, upstreams: tuple[tuple[str, str], ...] = ()) -> None:
        """``upstreams``: (name, kind) of each configured upstream, exported from the start."""
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.m = _build(self.registry)
        self.m["build"].info({"version": __version__})
        self._models = BoundedLabel(MAX_MODELS)
        self._users = BoundedLabel(max_users)
        for reason in UPSTREAM_ERROR_REASONS:  # every reason exported from the start (0)
            self.m["upstream_errors"].labels(reason)
        self._kinds = dict(upstreams)
        for name, kind in upstreams:
            self.m["upstream_up"].labels(name, kind).set(1)
            self.m["upstream_in_flight_requests"].labels(name)
            self.m["upstream_retries"].labels(name)
            for reason in UPSTREAM_ERROR_REASONS:
                self.m["upstream_failures"].labels(name, reason)
        assert set(self.m) == {m.name.removeprefix("foundry_gateway_") for m in METRICS}
        assert metric("requests").type == "counter"

    # -- labels --------------------------------------------------------------
    def model(self, requested: str | None, known: bool) -> str:
        """A bounded model label: ``known`` = the upstream served or lists it."""
        if not requested:
            return NONE
        return self._models(requested, admit=known)

    def user(self, value: str | None) -> str:
        return self._users(value) if value else UNKNOWN_USER

    def upstream_moved(self) -> None:
        self.m["upstream_moves"].inc()

    def models_seen(self) -> tuple[str, ...]:
        """Model ids the upstream served or listed (bounded): what the follower looks for."""
        return tuple(self._models.seen)

    # -- events --------------------------------------------------------------
    def request(self, route: str, model: str, code: int, seconds: float | None,
                user: str | None = None) -> None:
        self.m["requests"].labels(route, model, str(code)).inc()
        if seconds is not None:
            self.m["request_duration_seconds"].labels(route, model).observe(seconds)
        if user is not None:
            self.m["user_requests"].labels(user, model).inc()

    def tokens(self, model: str, prompt: int | None, completion: int | None,
               user: str | None = None) -> None:
        for kind, n in (("prompt", prompt), ("completion", completion)):
            if n:
                self.m["tokens"].labels(model, kind).inc(n)
                if user is not None:
                    self.m["user_tokens"].labels(user, model, kind).inc(n)

    def ttft(self, model: str, seconds: float) -> None:
        self.m["time_to_first_token_seconds"].labels(model).observe(seconds)

    def stream_timing(self, model: str) -> tuple[Histogram, Counter]:
        """(inter-token histogram child, generation-seconds counter child) for one stream."""
        return (self.m["inter_token_seconds"].labels(model),
                self.m["generation_seconds"].labels(model))

    def upstream_error(self, reason: str) -> None:
        self.m["upstream_errors"].labels(reason).inc()

    # -- per upstream (names from the config: bounded) ------------------------
    def upstream_failure(self, upstream: str, reason: str) -> None:
        """A failure of one upstream: counted per upstream and in upstream_errors_total."""
        self.m["upstream_errors"].labels(reason).inc()
        self.m["upstream_failures"].labels(upstream, reason).inc()

    def upstream_retry(self, upstream: str) -> None:
        self.m["upstream_retries"].labels(upstream).inc()

    def upstream_in_flight(self, upstream: str, delta: int) -> None:
        self.m["upstream_in_flight_requests"].labels(upstream).inc(delta)

    def upstream_request(self, upstream: str, kind: str, code: int) -> None:
        self.m["upstream_requests"].labels(upstream, kind, str(code)).inc()

    def upstream_wait(self, upstream: str, seconds: float) -> None:
        self.m["upstream_wait_seconds"].labels(upstream).observe(seconds)

    def upstream_ttft(self, upstream: str) -> Histogram:
        return self.m["upstream_time_to_first_token_seconds"].labels(upstream)

    def upstream_state(self, upstream: str, up: bool, models: int) -> None:
        self.m["upstream_up"].labels(upstream, self._kinds.get(upstream, "local")).set(int(up))
        self.m["upstream_models"].labels(upstream).set(models)

    @property
    def in_flight(self) -> Gauge:
        return self.m["in_flight_requests"]

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Discard:
    """An instrument that records nothing (a canary's histogram and counter children)."""

    def observe(self, _value: float) -> None:
        pass

    def inc(self, _amount: float = 1) -> None:
        pass


_DISCARD = _Discard()


class CanaryRecorder:
    """What a request marked as the exporter's canary records, in the Recorder's shape.

    Only ``canary_requests_total`` and upstream failures (the health of the door,
    whoever found it broken); never the real-traffic series, so the Chats
    dashboard shows users' chats only. Streams take the same code path as real
    ones, with instruments that discard.
    """

    def __init__(self, rec: Recorder) -> None:
        self._rec = rec
        self.model = rec.model
        self.upstream_error = rec.upstream_error
        self.upstream_failure = rec.upstream_failure
        self.upstream_retry = rec.upstream_retry

    def request(self, route: str, _model: str, code: int, _seconds: float | None,
                _user: str | None = None) -> None:
        self._rec.m["canary_requests"].labels(route, str(code)).inc()

    def tokens(self, *_args: object) -> None:
        pass

    def upstream_in_flight(self, *_args: object) -> None:
        pass

    def upstream_request(self, *_args: object) -> None:
        pass

    def upstream_wait(self, *_args: object) -> None:
        pass

    def upstream_ttft(self, _upstream: str) -> _Discard:
        return _DISCARD

    def ttft(self, _model: str, _seconds: float) -> None:
        pass

    def stream_timing(self, _model: str) -> tuple[_Discard, _Discard]:
        return _DISCARD, _DISCARD
