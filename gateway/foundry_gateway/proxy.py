"""One request through the gateway: key, route, upstream exchange, metrics.

The only module that combines I/O and measurement; its pieces are pure
(``routes``, ``relay``, ``auth``) or thin (``upstream``, ``server``).
Failures after the response head has gone out cannot change the status: the
client then gets an SSE ``error`` event (what OpenAI clients raise as an
APIError) and a properly terminated body, never a silently cut stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time

from foundry_exporter.probes.activity import CANARY_HEADER

from .activity import Activity
from .config import Config
from .metrics import NONE
from .recorder import CanaryRecorder, Recorder
from .relay import StreamRelay, usage_of
from .routes import Route, route
from .server import ClientConnection, ClientGone, Request
from .upstreams.connection import UpstreamError
from .upstreams.models import list_body, model_object
from .upstreams.pool import Attempt, NoRoute, Pool

log = logging.getLogger(__name__)

# Headers that describe one hop, never forwarded (RFC 9110 7.6.1), plus the ones we set.
_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te",
        b"trailer", b"upgrade", b"proxy-authenticate", b"proxy-authorization",
        b"content-length"}
_FORWARD_REQUEST = (b"content-type", b"accept", b"user-agent")
_CANARY = CANARY_HEADER.lower().encode()  # the exporter's mark: relayed, never counted as real
_JSON = [(b"content-type", b"application/json")]
_TIMEOUTS = {"connect_timeout", "header_timeout", "idle_timeout", "total_timeout"}
UPSTREAM_HEADER = b"x-foundry-upstream"  # which upstream answered (its configured name)
MODEL_HEADER = b"x-foundry-model"        # the real model sent there, when a route or fallback chose it
_OWN = {UPSTREAM_HEADER, MODEL_HEADER}    # ours: an upstream's (an edge gateway's) are replaced
PIN_HEADER = b"x-foundry-upstream"       # on a request: only this upstream (smoke tests each)
RETRY_DRAIN_BYTES = 64 * 1024            # a 5xx body read (and dropped) before retrying elsewhere
CLIENT_CLOSED = 499  # nginx's code for "client closed the connection first"
# Inter-token gaps reach the histogram in batches at most this old: observing each
# one as it happens cost more than relaying the token.
GAP_FLUSH_SECONDS = 0.25


def error_doc(message: str, code: str, kind: str = "gateway_error") -> dict:
    return {"error": {"message": message, "type": kind, "code": code}}


def status_for(reason: str) -> int:
    return 504 if reason in _TIMEOUTS else 502


def key_matches(headers: list[tuple[bytes, bytes]], key: bytes) -> bool:
    """Constant-time check of ``Authorization: Bearer <key>``."""
    given = next((v for k, v in headers if k == b"authorization"), b"")
    scheme, _, token = given.partition(b" ")
    ok = hmac.compare_digest(token.strip(), key)
    return ok and scheme.lower() == b"bearer"


def split_headers(headers: list[tuple[bytes, bytes]], user_header: bytes | None,
                  ) -> tuple[list[tuple[bytes, bytes]], bool, bytes]:
    """(headers to forward upstream, marked as the exporter's canary, the user header's value).

    One pass; the canary mark (exactly ``1``) and the user header are never forwarded.
    """
    forward: list[tuple[bytes, bytes]] = []
    canary, user = False, None
    for k, v in headers:
        if k in _FORWARD_REQUEST:
            forward.append((k, v))
        elif k == _CANARY:
            canary = v.strip() == b"1"
        elif k == user_header and user is None:
            user = v
    return forward, canary, user or b""


def response_headers(upstream: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Upstream headers minus hop-by-hop ones, exact duplicates dropped (Foundry repeats some)."""
    out: list[tuple[bytes, bytes]] = []
    for pair in upstream:
        if pair[0] not in _HOP and pair[0] not in _OWN and pair not in out:
            out.append(pair)
    return out


class Gateway:
    def __init__(self, config: Config, recorder: Recorder, pool: Pool) -> None:
        self.config, self.rec, self.pool = config, recorder, pool
        self.client = pool.members[0].client  # the first upstream's (single-upstream paths)
        self.canary = CanaryRecorder(recorder)
        self.activity = Activity()
        self.key = config.api_key.encode()
        self.user_header = config.per_user.header_name.encode() if config.per_user.enabled else None

    async def handle(self, out: ClientConnection, req: Request, body: bytes,
                     received: float) -> None:
        method, target = req.method.decode("latin-1"), req.target.decode("latin-1")
        r = route(method, target)
        if r.name == "healthz":
            await out.respond(200, [(b"content-type", b"text/plain")], b"ok\n")
            return
        if not (r.name == "metrics" and not self.config.metrics_require_key) \
                and not key_matches(req.headers, self.key):
            await self._refuse(out, Route("refused", 401, "missing or wrong API key; send "
                                          "Authorization: Bearer <GATEWAY_API_KEY>"), received,
                               [(b"www-authenticate", b"Bearer")])
            return
        if r.refused:
            await self._refuse(out, r, received)
        elif r.name == "activity":  # key holders only, whatever metrics_require_key says
            await out.respond_json(200, self.activity.report(time.monotonic(), time.time()))
        elif r.name == "upstreams":
            if self.pool.fleet:
                with contextlib.suppress(UpstreamError):
                    await self.pool.refresh()
            await out.respond_json(200, self.pool.report())
        elif r.name == "metrics":
            for m in self.pool.members:
                self.rec.upstream_state(m.name, m.up, len(m.loaded))
            text = await asyncio.to_thread(self.rec.render)
            await out.respond(200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
                              text)
        elif r.name in ("models", "model"):
            await self._models(out, r, received)
        elif r.name == "loaded":
            await self._loaded(out, target, received)
        else:
            await self._api(out, r.name, target, req.headers, body, received)

    async def too_large(self, out: ClientConnection, _req: object) -> None:
        limit = self.config.limits.max_request_bytes
        await self._refuse(out, Route("refused", 413, f"request body over {limit} bytes"),
                           time.monotonic())

    async def _refuse(self, out: ClientConnection, r: Route, received: float,
                      extra: list[tuple[bytes, bytes]] = ()) -> None:
        kind = "authentication_error" if r.status == 401 else "invalid_request_error"
        codes = {401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "request_too_large"}
        await out.respond_json(r.status, error_doc(r.message, codes[r.status], kind), extra)
        self.rec.request("refused", NONE, r.status, None)

    async def _upstream_failed(self, out: ClientConnection, exc: UpstreamError,
                               counted: bool = False) -> int:
        if not counted:
            self.rec.upstream_error(exc.reason)
        log.warning("upstream %s: %s", exc.reason, exc)
        status = status_for(exc.reason)
        await out.respond_json(status, error_doc(f"upstream: {exc}", exc.reason))
        return status

    # -- the gateway's own answers ----------------------------------------------
    async def _models(self, out: ClientConnection, r: Route, received: float) -> None:
        try:
            models = await self.pool.listing()
        except UpstreamError as exc:
            code = await self._upstream_failed(out, exc)
        else:
            if r.name == "models":
                code = 200
                await out.respond(200, _JSON, list_body(models))
            elif r.model_id in models:
                code = 200
                await out.respond_json(200, model_object(r.model_id))
            else:
                code = 404
                await out.respond_json(404, error_doc(
                    f"model {r.model_id!r} is not a loaded chat model", "model_not_found",
                    "invalid_request_error"))
        self.rec.request(r.name, NONE, code, time.monotonic() - received)

    async def _loaded(self, out: ClientConnection, target: str, received: float) -> None:
        code = 502
        if self.pool.fleet:  # the union of the local members' loaded models, as a JSON list
            try:
                await self.pool.listing()
            except UpstreamError as exc:
                code = await self._upstream_failed(out, exc)
            else:
                code = 200
                await out.respond(200, _JSON, json.dumps(list(dict.fromkeys(
                    m for x in self.pool.local if x.up for m in x.loaded))).encode())
            self.rec.request("loaded", NONE, code, time.monotonic() - received)
            return
        try:
            exchange = await self.client.send("GET", self.client.target(target),
                                              [(b"accept", b"application/json")])
            try:
                body = await exchange.read_all()
            finally:
                exchange.close()
            code = exchange.status
            await out.respond(code, response_headers(exchange.headers), body)
        except UpstreamError as exc:
            code = await self._upstream_failed(out, exc)
        self.rec.request("loaded", NONE, code, time.monotonic() - received)

    # -- chat and embeddings ------------------------------------------------------
    async def _api(self, out: ClientConnection, name: str, target: str,
                   headers: list[tuple[bytes, bytes]], body: bytes, received: float) -> None:
        doc = _json_object(body)
        requested = doc.get("model") if doc is not None and isinstance(doc.get("model"), str) else None
        strip = False
        if name == "chat" and doc is not None and doc.get("stream") is True:
            opts = doc.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage") is True):
                doc["stream_options"] = {**(opts if isinstance(opts, dict) else {}),
                                         "include_usage": True}
                body, strip = json.dumps(doc, separators=(",", ":")).encode(), True
        forward, canary, raw_user = split_headers(headers, self.user_header)
        # The canary is relayed like any chat but recorded apart (CanaryRecorder) and is
        # no activity: it must neither show on the Chats dashboard nor make itself skip.
        rec = self.canary if canary else self.rec
        user = None
        if self.user_header is not None and not canary:
            user = self.rec.user(raw_user.decode("utf-8", "replace").strip())
        if not canary:
            self.rec.in_flight.inc()
            self.activity.begin(received)
        model, code = rec.model(requested, self.pool.known(requested)), 502
        try:
            try:
                attempts = await self.pool.attempts(requested, doc)
                pin = next((v for k, v in headers if k == PIN_HEADER), None)
                if pin is not None:
                    attempts = self.pool.pinned(attempts, pin.decode("latin-1").strip(),
                                                requested)
            except NoRoute as exc:
                code = exc.status
                kind = "invalid_request_error" if code < 500 else "gateway_error"
                await out.respond_json(code, error_doc(str(exc), "no_upstream" if code == 503
                                                       else "model_not_found", kind))
                return
            code, model = await self._attempt_all(out, name, target, forward, body, doc,
                                                  attempts, requested, strip, received, user,
                                                  rec, model)
        except ClientGone:
            code = CLIENT_CLOSED
        finally:
            done = time.monotonic()
            if not canary:
                self.rec.in_flight.dec()
                self.activity.end(done)
            rec.request(name, model, code, done - received, user)

    async def _attempt_all(self, out: ClientConnection, name: str, target: str,
                           forward: list[tuple[bytes, bytes]], body: bytes, doc: dict | None,
                           attempts: list[Attempt], requested: str | None, strip: bool,
                           received: float, user: str | None, rec, model: str) -> tuple[int, str]:
        """Each attempt in turn until one answers without failing before its first byte.

        Nothing has reached the client before an attempt is given up, so a retry
        never duplicates a started answer; once a head is relayed, it is final."""
        for i, attempt in enumerate(attempts):
            member, last = attempt.member, i == len(attempts) - 1
            sent = body
            if attempt.model != (requested or "") and doc is not None:
                sent = json.dumps({**doc, "model": attempt.model}, separators=(",", ":")).encode()
            self.pool.begin(member)
            rec.upstream_in_flight(member.name, +1)
            started = time.monotonic()
            try:
                try:
                    exchange = await member.client.send(
                        "POST", member.client.target(target), forward, sent)
                except UpstreamError as exc:
                    rec.upstream_failure(member.name, exc.reason)
                    self.pool.failed(member, exc.reason)
                    if last:
                        return await self._upstream_failed(out, exc, counted=True), model
                    rec.upstream_retry(member.name)
                    log.warning("upstream %s %s before answering (%s); trying %s", member.name,
                                exc.reason, exc, attempts[i + 1].member.name)
                    continue
                try:
                    rec.upstream_wait(member.name, time.monotonic() - started)
                    if exchange.status >= 500 and not last:
                        await _drain(exchange)
                        rec.upstream_failure(member.name, "http_5xx")
                        rec.upstream_retry(member.name)
                        self.pool.failed(member, "http_5xx")
                        log.warning("upstream %s answered %d; trying %s", member.name,
                                    exchange.status, attempts[i + 1].member.name)
                        continue
                    if exchange.status < 500:
                        self.pool.succeeded(member)
                    else:
                        self.pool.failed(member, "http_5xx")
                    extra = [(UPSTREAM_HEADER, member.name.encode())]
                    if attempt.model != (requested or ""):
                        extra.append((MODEL_HEADER, attempt.model.encode()))
                    code, model = await self._answer(out, name, exchange, requested, strip,
                                                     received, user, rec, member.name, extra)
                    rec.upstream_request(member.name, member.upstream.kind, code)
                    return code, model
                finally:
                    exchange.close()
            finally:
                self.pool.end(member)
                rec.upstream_in_flight(member.name, -1)
        raise AssertionError("plan() returns at least one attempt")

    async def _answer(self, out: ClientConnection, name: str, exchange, requested: str | None,
                      strip: bool, received: float, user: str | None,
                      rec: Recorder | CanaryRecorder, upstream: str,
                      extra: list[tuple[bytes, bytes]]) -> tuple[int, str]:
        status = exchange.status
        model = rec.model(requested, status < 400 or self.pool.known(requested))
        if 300 <= status < 400:
            return await self._upstream_failed(out, UpstreamError(
                "redirect", f"answered {status}; the gateway does not follow redirects")), model
        if status >= 500:
            rec.upstream_failure(upstream, "http_5xx")
        if exchange.header(b"content-type").startswith(b"text/event-stream"):
            return await self._stream(out, exchange, model, strip, received, user, rec,
                                      upstream, extra), model
        try:
            payload = await exchange.read_all()
        except UpstreamError as exc:
            rec.upstream_failure(upstream, exc.reason)
            return await self._upstream_failed(out, exc, counted=True), model
        await out.respond(status, response_headers(exchange.headers) + extra, payload)
        if status == 200:
            prompt, completion = usage_of(payload)
            rec.tokens(model, prompt, completion, user)
        return status, model

    async def _stream(self, out: ClientConnection, exchange, model: str, strip: bool,
                      received: float, user: str | None, rec: Recorder | CanaryRecorder,
                      upstream: str, extra: list[tuple[bytes, bytes]]) -> int:
        """Relay an event stream from the upstream connection's own callback.

        Per upstream read: frame check, the relay's byte scan, one client write.
        Everything else (gaps into the histogram, backpressure) is batched or rare.
        """
        relay = StreamRelay(strip)
        stats = relay.stats
        gaps, generation = rec.stream_timing(model)
        upstream_ttft = rec.upstream_ttft(upstream)
        out.start(exchange.status, response_headers(exchange.headers) + extra)
        code = exchange.status
        clock = time.monotonic
        flushed = [0.0]
        loop = asyncio.get_running_loop()

        draining: set[asyncio.Task] = set()  # at most one; a reference keeps it alive

        async def resume_when_drained() -> None:
            try:
                await out.drained()
            except ClientGone as exc:
                exchange.fail(exc)
            else:
                exchange.resume()
            finally:
                draining.clear()

        def sink(piece: bytes) -> None:
            now = clock()
            first = stats.first_content_at
            data = relay.feed(piece, now)
            if data:
                out.send_nowait(data)
                if out.congested() and not draining:
                    exchange.pause()
                    draining.add(loop.create_task(resume_when_drained()))
            if first is None and stats.first_content_at is not None:
                rec.ttft(model, now - received)
                upstream_ttft.observe(now - received)
                flushed[0] = now
            elif stats.gaps and now - flushed[0] >= GAP_FLUSH_SECONDS:
                _observe_all(gaps, stats.gaps)
                flushed[0] = now

        try:
            await exchange.drive(sink)
            tail = relay.flush()
            if tail:
                await out.send(tail)
        except UpstreamError as exc:
            rec.upstream_failure(upstream, exc.reason)
            log.warning("upstream %s %s mid-stream: %s", upstream, exc.reason, exc)
            code = status_for(exc.reason)
            event = json.dumps(error_doc(f"upstream: {exc}", exc.reason))
            await out.send(f"data: {event}\n\n".encode())
        finally:
            _observe_all(gaps, stats.gaps)
        out.end()
        if stats.first_content_at is not None:
            generation.inc(time.monotonic() - stats.first_content_at)
        if stats.invalid_events:
            rec.upstream_failure(upstream, "invalid_sse")
        rec.tokens(model, stats.prompt_tokens, stats.completion_tokens, user)
        return code


async def _drain(exchange) -> None:
    """Read (at most RETRY_DRAIN_BYTES of) a failed answer that will not be relayed."""
    with contextlib.suppress(UpstreamError):
        got = 0
        async for piece in exchange.body():
            got += len(piece)
            if got > RETRY_DRAIN_BYTES:
                break


def _observe_all(histogram, values: list[float]) -> None:
    for value in values:
        histogram.observe(value)
    values.clear()


def _json_object(body: bytes) -> dict | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
