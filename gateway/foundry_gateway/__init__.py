"""Foundry Local gateway: one guarded, measured door in front of Foundry Local.

Layout: ``config`` (strict YAML, shares the exporter's readers) -> ``routes``
(pure allowlist) -> ``server`` (own HTTP/1.1 parser over asyncio streams, one task
per client connection) -> ``proxy`` (one exchange: fresh upstream connection per
request, one spare opened ahead, ``upstream``: an asyncio protocol) -> ``relay`` (pure SSE observer: TTFT, inter-token gaps, usage,
usage-chunk stripping) -> ``recorder`` (the only writer of metrics, declared
once in ``metrics``).
"""

__version__ = "0.1.0"
