"""Where each kind keeps each endpoint (pure).

- foundry: ``url`` is the service root, or root + ``/catalogs/local`` for local
  (BYOM) models; loaded models at ``{url}/models/loaded`` (SDK / new CLI) or
  ``{origin}/openai/loadedmodels`` (classic service).
- openai: ``url`` is the OpenAI base URL as clients use it (usually ends in /v1).
- openwebui: ``url`` is the Open WebUI root.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def models_url(kind: str, url: str) -> str:
    return f"{url}/v1/models" if kind == "foundry" else f"{url}/models"


def chat_url(kind: str, url: str) -> str:
    return f"{url}/v1/chat/completions" if kind == "foundry" else f"{url}/chat/completions"


def loaded_urls(url: str) -> tuple[str, str]:
    """(current generation, classic generation) loaded-model endpoints."""
    parts = urlsplit(url)
    return f"{url}/models/loaded", f"{parts.scheme}://{parts.netloc}/openai/loadedmodels"


def health_url(url: str) -> str:
    return f"{url}/health"
