"""The WSGI app, health verdicts and /probe resolution, called in-process."""

from __future__ import annotations

import io
from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import CollectorRegistry

from foundry_exporter.collector import SnapshotCollector
from foundry_exporter.config import Config, Module, Target, builtin_modules
from foundry_exporter.state import fold, health, initial_state, tick
from foundry_exporter.web import NO_HEADER, make_app, scrape_budget

T = Target("f", "http://f:1", Module("foundry", ("models",)), interval=10)


HEADER = {"HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS": "10"}


def _call(app, path: str, query: str = "", headers: dict[str, str] | None = None,
          method: str = "GET"):
    environ: dict = {"PATH_INFO": path, "QUERY_STRING": query, "wsgi.input": io.BytesIO(),
                     "REQUEST_METHOD": method}
    environ.update(headers or {})
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h: status.append(s)))
    return int(status[0].split()[0]), body.decode()


def _app(ok: bool = True, probe=None):
    registry = CollectorRegistry(auto_describe=False)
    snapshot = initial_state((T,))
    registry.register(SnapshotCollector(lambda: snapshot))
    return make_app(registry, lambda: (ok, "why"), probe or (lambda t, m, b: (200, "text/plain", f"{t}|{m}|{b}".encode())))


def test_routes() -> None:
    assert _call(_app(), "/metrics")[1].count("# TYPE foundry_up gauge") == 1
    assert _call(_app(), "/healthz") == (200, "why\n")
    assert _call(_app(ok=False), "/healthz") == (503, "why\n")
    assert _call(_app(), "/nope")[0] == 404
    assert _call(_app(), "/")[0] == 200
    assert _call(_app(), "/probe", headers=HEADER)[0] == 400
    assert _call(_app(), "/probe", "target=h:1&module=openai", HEADER) == (200, "h:1|openai|9.5")


@pytest.mark.parametrize("header", [None, "", "abc", "0", "-3"])
def test_probe_without_a_usable_scrape_timeout_header_is_refused_before_probing(
        header: str | None) -> None:
    called = []
    app = _app(probe=lambda *a: called.append(a) or (200, "text/plain", b""))
    headers = {} if header is None else {"HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS": header}
    assert _call(app, "/probe", "target=f", headers) == (400, NO_HEADER.decode())
    assert called == []


@pytest.mark.parametrize("method", ["POST", "OPTIONS", "HEAD", "PUT"])
def test_probe_answers_get_only(method: str) -> None:
    called = []
    app = _app(probe=lambda *a: called.append(a) or (200, "text/plain", b""))
    assert _call(app, "/probe", "target=f", HEADER, method=method) == (
        405, "/probe answers GET only\n")
    assert called == []


@pytest.mark.parametrize(("header", "budget"), [(None, None), ("10", 9.5), ("0.2", 0.1),
                                                ("abc", None), ("-3", None)])
def test_scrape_budget(header: str | None, budget: float | None) -> None:
    environ = {} if header is None else {"HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS": header}
    assert scrape_budget(environ) == budget


def test_health_verdicts() -> None:
    s = initial_state((T,), now_monotonic=100.0)
    assert health(s, 101.0, 30, 10) == (False, "probe loop has not started")
    s = tick(s, 101.0, 0)
    assert health(s, 102.0, 30, 10) == (True, "ok: 1 targets, last tick 1.0s ago")
    assert health(s, 120.0, 30, 10) == (False, "probe loop stale: last tick 19.0s ago (limit 10s)")
    s = tick(s, 140.0, 0)
    assert health(s, 140.0, 30, 10) == (
        False, "target f: no probe cycle finished for 40.0s (limit 30s)")
    s = fold(s, (), 139.0)  # an empty fold does not count as a cycle
    assert health(s, 140.0, 30, 10)[0] is False


def test_stale_after_default_follows_the_slowest_target() -> None:
    config = Config((T,), builtin_modules())
    assert config.healthz_stale_after() == 2 * (10 + 10) + 5
