"""The live model list: the upstream's LOADED chat models, cached for ``ttl`` seconds.

SDK 2.x ``/v1/models`` lists the whole catalog (whisper, embedding models,
models not loaded); Open WebUI must offer only what can chat now. The list is
the upstream's loaded-model listing (``/models/loaded``, or the classic
``/openai/loadedmodels`` on 404) through the exporter's parser and chat-model
filter, so the stack has one definition of "a chat model". Concurrent callers
during a refresh share one upstream request.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

from foundry_exporter.probes.listing import chat_candidates, parse_model_list
from foundry_exporter.probes.urls import loaded_urls

from .connection import UpstreamClient, UpstreamError
from .singleflight import SingleFlight

OWNED_BY = "foundry-local"
_ACCEPT = [(b"accept", b"application/json")]


class ModelList:
    def __init__(self, client: UpstreamClient, base_url: str, ttl: float,
                 clock=time.monotonic) -> None:
        self.client, self.ttl, self.clock = client, ttl, clock
        current, classic = loaded_urls(base_url)
        self.targets = (urlsplit(current).path, urlsplit(classic).path)
        self._at = -1e18
        self._models: tuple[str, ...] = ()
        self._refresh: SingleFlight[tuple[str, ...]] = SingleFlight()

    @property
    def known(self) -> tuple[str, ...]:
        """The last list fetched (possibly stale), without I/O: for metric labels."""
        return self._models

    def invalidate(self) -> None:
        """The next ``get`` asks the upstream (the prober's check)."""
        self._at = -1e18

    async def get(self) -> tuple[str, ...]:
        """Loaded chat models; raises UpstreamError when the upstream cannot say."""
        if self.clock() - self._at < self.ttl:
            return self._models
        return await self._refresh.run(self._fetch)

    async def _fetch(self) -> tuple[str, ...]:
        current, classic = self.targets
        status, body = await self._get(current)
        if status == 404:
            status, body = await self._get(classic)
        if status != 200:
            raise UpstreamError("http_5xx" if status >= 500 else "protocol",
                                f"loaded-model listing answered {status}")
        try:
            models = chat_candidates(parse_model_list(json.loads(body)))
        except ValueError as exc:
            raise UpstreamError("protocol", f"loaded-model listing: {exc}") from None
        self._models, self._at = models, self.clock()
        return models

    async def _get(self, target: str) -> tuple[int, bytes]:
        exchange = await self.client.send("GET", target, _ACCEPT)
        try:
            return exchange.status, await exchange.read_all()
        finally:
            exchange.close()


def model_object(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": OWNED_BY}


def list_body(models: tuple[str, ...]) -> bytes:
    return json.dumps({"object": "list", "data": [model_object(m) for m in models]}).encode()
