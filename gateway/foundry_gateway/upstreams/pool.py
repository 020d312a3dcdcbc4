"""Several upstreams behind one gateway: who has which model, who is busy, who is out.

A :class:`Member` is one upstream: its client, what it can serve (a local
upstream's LOADED chat models, fetched like the single-upstream list; a cloud
upstream's declared ``models``), how many requests it is answering now, and
whether it is in rotation. :func:`plan` (pure) turns a request's model into the
ordered attempts the proxy makes; :class:`Pool` keeps the members current.

Policy, in order (``routing`` in the config):

- a route id (``routes``) tries its real models in order; any other id is tried
  as itself;
- for each model, the local members that have it loaded, least busy first
  (fewest in-flight requests; ties rotate), then the cloud members offering it
  — unless the model or route is ``local_only``;
- a local model falls back to ``cloud_fallback``, tried after the local members
  (so also when they fail before answering) and before those whose window
  ``context_tokens`` says the prompt exceeds — never for a local-only model;
- out-of-rotation members are not tried; with none left the request fails
  with a one-line reason (503), and a local-only request never reaches a cloud.

Health: ``OUT_AFTER`` consecutive failures before the first byte (connect,
reset, timeout, 5xx) or one failed listing take a member out; the prober asks an
out local member's listing every ``PROBE_INTERVAL`` and puts it back when it
answers. A cloud member (no listing worth asking) comes back after
``CLOUD_COOLDOWN`` as a trial: one failure takes it out again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field

from ..config import Config, Routing, Upstream
from .connection import UpstreamClient, UpstreamError
from .models import ModelList

log = logging.getLogger(__name__)

OUT_AFTER = 2            # consecutive failures that take a member out of rotation
PROBE_INTERVAL = 2.0     # seconds between listings of an out local member
CLOUD_COOLDOWN = 15.0    # seconds before an out cloud member gets a trial request
CHARS_PER_TOKEN = 4      # prompt-size estimate for context_tokens (no tokenizer here)


@dataclass(eq=False)
class Member:
    upstream: Upstream
    client: UpstreamClient
    models: ModelList | None  # None: cloud (declared models)
    in_flight: int = 0
    failures: int = 0
    up: bool = True
    out_since: float = 0.0
    reason: str = ""  # why it is out (last failure), for status and logs
    served: int = field(default=0)  # requests answered, for tie rotation

    @property
    def name(self) -> str:
        return self.upstream.name

    @property
    def cloud(self) -> bool:
        return self.upstream.cloud

    @property
    def loaded(self) -> tuple[str, ...]:
        """What it can serve now, without I/O (a local member's last listing)."""
        return self.upstream.models if self.models is None else self.models.known


@dataclass(frozen=True)
class Attempt:
    member: Member
    model: str  # the real model id to send (differs from the request's for routes/fallback)


class NoRoute(Exception):
    """No member may take the request; ``status`` 404 (unknown model) or 503 (none up)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def plan(requested: str | None, routing: Routing, members: list[Member],
         prompt_chars: int = 0, fleet: bool = True) -> list[Attempt]:
    """The attempts for one request, best first; raises NoRoute when there are none."""
    if not fleet:  # one upstream, no routing: everything goes there, as it always did
        return [Attempt(members[0], requested or "")]
    if not requested:
        raise NoRoute(400, "the request names no model; set \"model\" to one of /v1/models")
    route = routing.route(requested)
    models = route.models if route else (requested,)
    local_only = route.local_only if route else requested in routing.local_only
    attempts: list[Attempt] = []
    deferred: list[Attempt] = []  # local members whose window the prompt exceeds
    for model in models:
        ctx = routing.context_of(model)
        too_long = ctx is not None and prompt_chars // CHARS_PER_TOKEN > ctx
        local = sorted((m for m in members if not m.cloud and m.up and model in m.loaded),
                       key=lambda m: (m.in_flight, m.served))
        (deferred if too_long else attempts).extend(Attempt(m, model) for m in local)
        if not local_only:
            attempts += [Attempt(m, model) for m in members
                         if m.cloud and m.up and model in m.upstream.models]
    cloud_models = {m for x in members if x.cloud for m in x.upstream.models}
    fallback = routing.cloud_fallback
    if fallback and not local_only and route is None and requested not in cloud_models:
        attempts += [Attempt(m, fallback) for m in members
                     if m.cloud and m.up and fallback in m.upstream.models]
    attempts += deferred
    if attempts:
        return attempts
    raise NoRoute(*_why_none(requested, models, local_only, members))


def _why_none(requested: str, models: tuple[str, ...], local_only: bool, members: list[Member],
              ) -> tuple[int, str]:
    known = any(model in m.loaded for m in members for model in models)
    out = [f"{m.name} ({m.reason or 'out'})" for m in members if not m.up]
    down = f"; out of rotation: {', '.join(out)}" if out else ""
    if not known and not out:
        return 404, (f"model {requested!r} is not loaded on any upstream; "
                     "GET /v1/models lists what is")
    if local_only:
        return 503, (f"{requested!r} is local-only and no local upstream that has it loaded is "
                     f"up{down}; it is never sent to a cloud upstream")
    return 503, f"no upstream can serve {requested!r} now{down}"


def prompt_chars(doc: dict | None) -> int:
    """Characters of a chat request's message contents (for the context estimate)."""
    if not doc:
        return 0
    total = 0
    for msg in doc.get("messages") or ():
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text", "")) for p in content
                         if isinstance(p, dict) and isinstance(p.get("text"), str))
    return total


class Pool:
    def __init__(self, config: Config, clients: list[UpstreamClient],
                 lists: list[ModelList | None], on_change=lambda member: None,
                 clock=time.monotonic) -> None:
        self.config, self.clock, self.on_change = config, clock, on_change
        self.members = [Member(u, c, m) for u, c, m in zip(config.upstreams, clients, lists,
                                                            strict=True)]
        self.fleet = config.fleet
        self._turn = itertools.count(1)  # after every member's initial 0
        self._prober: asyncio.Task | None = None

    @property
    def local(self) -> list[Member]:
        return [m for m in self.members if not m.cloud]

    # -- what can be served ---------------------------------------------------------
    async def refresh(self) -> None:
        """Bring every in-rotation local member's listing up to date (cached ``ttl``);
        a member whose listing fails is taken out."""
        await asyncio.gather(*(self._refresh(m) for m in self.local if m.up))

    async def _refresh(self, m: Member) -> None:
        try:
            await m.models.get()
        except UpstreamError as exc:
            self.failed(m, exc.reason, at_once=True)

    async def listing(self) -> tuple[str, ...]:
        """The union offered as /v1/models: local loaded models, cloud models, route ids.

        Raises UpstreamError when no local member can say what it has (one upstream:
        exactly the single-upstream behaviour)."""
        if not self.fleet:
            return await self.members[0].models.get()
        await self.refresh()
        seen: dict[str, None] = {}
        for m in self.local:
            if m.up:
                seen.update(dict.fromkeys(m.loaded))
        if not any(m.up for m in self.local) and not any(m.cloud and m.up for m in self.members):
            raise UpstreamError("connect", "no upstream is in rotation: "
                                + ", ".join(f"{m.name} ({m.reason or 'out'})" for m in self.members))
        for m in self.members:
            if m.cloud and m.up:
                seen.update(dict.fromkeys(m.upstream.models))
        for r in self.config.routing.routes:
            seen[r.name] = None
        return tuple(seen)

    def known(self, model: str | None) -> bool:
        """Whether ``model`` is one the gateway served or lists (metric label admission)."""
        if not model:
            return False
        return any(model in m.loaded for m in self.members) \
            or self.config.routing.route(model) is not None

    async def attempts(self, requested: str | None, doc: dict | None) -> list[Attempt]:
        if self.fleet:
            await self.refresh()
        return plan(requested, self.config.routing, self.members, prompt_chars(doc), self.fleet)

    def pinned(self, attempts: list[Attempt], name: str, requested: str | None) -> list[Attempt]:
        """Only the attempts on upstream ``name`` (a request's X-Foundry-Upstream: smoke
        checks each upstream); the policy still applies (local-only stays local)."""
        if not any(m.name == name for m in self.members):
            raise NoRoute(400, f"no upstream named {name!r}; GET /gateway/upstreams lists them")
        kept = [a for a in attempts if a.member.name == name]
        if not kept:
            raise NoRoute(503, f"upstream {name!r} cannot serve {requested!r} now (out of "
                          "rotation, model not loaded there, or not allowed by routing)")
        return kept

    # -- health ---------------------------------------------------------------------
    def begin(self, m: Member) -> None:
        m.in_flight += 1

    def end(self, m: Member) -> None:
        m.in_flight -= 1
        m.served = next(self._turn)

    def succeeded(self, m: Member) -> None:
        m.failures = 0
        if not m.up:
            self._set(m, True, "")

    def failed(self, m: Member, reason: str, at_once: bool = False) -> None:
        if not self.fleet:
            return  # one upstream: nothing to route around; it stays "in rotation"
        m.failures += 1
        m.reason = reason
        if m.up and (at_once or m.failures >= OUT_AFTER):
            m.out_since = self.clock()
            self._set(m, False, reason)
            self.start_prober()

    def _set(self, m: Member, up: bool, reason: str) -> None:
        m.up, m.reason = up, reason
        if up:
            m.failures = 0
        log.warning("upstream %s %s%s", m.name, "back in rotation" if up else "out of rotation",
                    f" ({reason})" if reason else "")
        self.on_change(m)

    # -- the prober -----------------------------------------------------------------
    def start_prober(self) -> None:
        if self._prober is None or self._prober.done():
            self._prober = asyncio.get_running_loop().create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        while any(not m.up for m in self.members):
            await asyncio.sleep(PROBE_INTERVAL)
            for m in [m for m in self.members if not m.up]:
                if m.cloud:
                    if self.clock() - m.out_since >= CLOUD_COOLDOWN:
                        m.failures = OUT_AFTER - 1  # a trial: the next failure takes it out
                        self._set(m, True, "")
                    continue
                with contextlib.suppress(UpstreamError):
                    m.models.invalidate()
                    await m.models.get()
                    self._set(m, True, "")

    def report(self) -> dict:
        """The state ``./stack status`` shows: no keys, no paths beyond each URL's origin."""
        from urllib.parse import urlsplit

        def origin(url: str) -> str:
            parts = urlsplit(url)
            return f"{parts.scheme}://{parts.netloc}"

        r = self.config.routing
        return {"fleet": self.fleet,
                "upstreams": [{"name": m.name, "kind": m.upstream.kind, "url": origin(m.upstream.url),
                               "up": m.up, "reason": m.reason if not m.up else "",
                               "models": list(m.loaded), "in_flight": m.in_flight}
                              for m in self.members],
                "routes": [{"name": x.name, "models": list(x.models), "local_only": x.local_only}
                           for x in r.routes],
                "cloud_fallback": r.cloud_fallback, "local_only": list(r.local_only)}

    def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
        for m in self.members:
            m.client.close()
