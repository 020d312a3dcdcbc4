"""HTTP endpoints as one small WSGI app, served by a stdlib threading server.

Why stdlib (wsgiref + ThreadingMixIn) rather than aiohttp or serving from the
asyncio loop: scrapes render in their own threads, so a scrape never waits on
the probe loop and never stalls the loop's chunk timestamps (TTFT); /metrics is
prometheus_client's own WSGI app (content negotiation, gzip, ?name[] filters);
and it adds no dependency. /probe hands its probe to the asyncio loop with
``run_coroutine_threadsafe`` and blocks only its own request thread.

Routes: /metrics, /healthz (503 + reason when the loop is stale), /probe
(blackbox-style, budget from X-Prometheus-Scrape-Timeout-Seconds), / (index).

/probe answers only GETs that carry Prometheus's scrape-timeout header, and
refuses the rest with a 4xx saying so: a web page's no-cors request cannot send
a custom header, and a CORS request for one needs a preflight this server never
approves (it sends no Access-Control-* headers). Refusing beats rate limiting:
nothing but Prometheus (or curl with -H) has a reason to call /probe.
"""

from __future__ import annotations

from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

SCRAPE_TIMEOUT_HEADER = "HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS"
SCRAPE_TIMEOUT_OFFSET = 0.5  # leave Prometheus time to receive the answer (as blackbox does)

HealthFn = Callable[[], tuple[bool, str]]
# (target, module or None, budget seconds) -> (status, content type, body)
ProbeFn = Callable[[str, str | None, float], tuple[int, str, bytes]]
NO_HEADER = (b"X-Prometheus-Scrape-Timeout-Seconds header is missing or not a positive number; "
             b"/probe answers Prometheus scrapes only (curl: add -H "
             b"'X-Prometheus-Scrape-Timeout-Seconds: 10')\n")

_INDEX = b"""<html><head><title>Foundry Local exporter</title></head><body>
<h1>Foundry Local exporter</h1><ul>
<li><a href="/metrics">/metrics</a>: cached results of the background probe loop</li>
<li><a href="/healthz">/healthz</a>: probe-loop liveness</li>
<li>/probe?target=NAME (a configured target, cached) or ?target=URL&amp;module=NAME
(a URL listed under probe_urls): for Prometheus, which sends
X-Prometheus-Scrape-Timeout-Seconds</li>
</ul></body></html>"""


def scrape_budget(environ: dict[str, Any]) -> float | None:
    """Seconds /probe may take: the scrape timeout header minus a safety offset."""
    raw = environ.get(SCRAPE_TIMEOUT_HEADER)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    if value is None or value <= 0:
        return None
    return max(0.1, value - SCRAPE_TIMEOUT_OFFSET)


def make_app(registry: CollectorRegistry, health: HealthFn, probe: ProbeFn):
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":
            ok, reason = health()
            return _reply(start_response, 200 if ok else 503, "text/plain; charset=utf-8",
                          (reason + "\n").encode())
        if path == "/probe":
            return _probe(environ, start_response, probe)
        if path == "/":
            return _reply(start_response, 200, "text/html; charset=utf-8", _INDEX)
        return _reply(start_response, 404, "text/plain; charset=utf-8", b"not found\n")

    return app


def _probe(environ: dict[str, Any], start_response, probe: ProbeFn) -> list[bytes]:
    text = "text/plain; charset=utf-8"
    if environ.get("REQUEST_METHOD", "GET") != "GET":
        return _reply(start_response, 405, text, b"/probe answers GET only\n", [("Allow", "GET")])
    budget = scrape_budget(environ)
    if budget is None:
        return _reply(start_response, 400, text, NO_HEADER)
    query = parse_qs(environ.get("QUERY_STRING", ""))
    target = (query.get("target") or [""])[0]
    if not target:
        return _reply(start_response, 400, text, b"target parameter is missing; use "
                      b"/probe?target=NAME (configured) or ?target=URL&module=NAME (probe_urls)\n")
    module = (query.get("module") or [None])[0]
    status, ctype, body = probe(target, module, budget)
    return _reply(start_response, status, ctype, body)


def _reply(start_response, status: int, ctype: str, body: bytes,
           extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    phrase = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
              405: "Method Not Allowed", 503: "Service Unavailable",
              504: "Gateway Timeout"}.get(status, "")
    start_response(f"{status} {phrase}", [("Content-Type", ctype),
                                          ("Content-Length", str(len(body))), *(extra or [])])
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the log."""


def serve(app, listen_address: str) -> _ThreadingServer:
    """A bound (not yet serving) server; call ``serve_forever`` in a thread."""
    host, _, port = listen_address.rpartition(":")
    return make_server(host.strip("[]") or "0.0.0.0", int(port), app,
                       server_class=_ThreadingServer, handler_class=_QuietHandler)
