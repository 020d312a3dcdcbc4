"""Foundry Local exporter: probes OpenAI-compatible LLM servers for Prometheus.

Layout: ``config`` (strict YAML) -> ``probes`` (HTTP, frozen results) ->
``state`` (pure fold into an immutable snapshot) -> ``collector`` (renders the
snapshot at scrape time) -> ``web`` (/metrics, /healthz, /probe).
"""

__version__ = "0.1.0"
