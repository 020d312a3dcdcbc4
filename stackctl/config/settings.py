"""The stack's settings: every default (ports, image tags, names) lives here, once.

compose.yaml reads these keys from .env (``${KEY:?…}``, no defaults of its own);
``.env.example`` is rendered from this table and a unit test fails when it drifts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    key: str
    default: str
    help: str
    section: str
    secret: bool = False  # generated on first run, never printed
    managed: bool = False  # written by `invoke up` from discovery; not for hand edits

    def initial_value(self) -> str:
        return secrets.token_urlsafe(32) if self.secret else self.default


_S = Setting
SETTINGS: tuple[Setting, ...] = (
    # -- stack --------------------------------------------------------------
    _S("COMPOSE_PROJECT_NAME", "foundry-chat", "Docker Compose project name (prefix of containers and volumes).", "stack"),
    _S("COMPOSE_PROFILES", "grafana", "Optional services to run; empty runs the stack without Grafana.", "stack"),
    _S("STACK_BIND_ADDRESS", "127.0.0.1", "Host address the published ports bind to. 0.0.0.0 opens the stack to your LAN (see README, Security).", "stack"),
    _S("OPENWEBUI_PORT", "3000", "Host port of Open WebUI.", "stack"),
    _S("GRAFANA_PORT", "3001", "Host port of Grafana.", "stack"),
    _S("PROMETHEUS_PORT", "9090", "Host port of Prometheus.", "stack"),
    _S("EXPORTER_PORT", "9101", "Host port of the Foundry Local exporter.", "stack"),
    _S("STACK_STATE_DIR", ".state", "Where the stack keeps runtime state (embedded Foundry server, logs), relative to the project.", "stack"),
    # -- images (pinned; override for mirrors or air-gapped registries) -----
    _S("OPENWEBUI_IMAGE", "ghcr.io/open-webui/open-webui:v0.12.4", "Open WebUI image.", "images"),
    _S("PROMETHEUS_IMAGE", "prom/prometheus:v3.5.0", "Prometheus image.", "images"),
    _S("GRAFANA_IMAGE", "grafana/grafana:12.2.1", "Grafana image.", "images"),
    _S("EXPORTER_IMAGE", "foundry-chat/exporter:0.1.0", "Exporter image, built from exporter/ on `invoke up`.", "images"),
    _S("EXPORTER_BASE_IMAGE", "python:3.11-slim", "Base image the exporter is built on.", "images"),
    # -- Foundry Local ------------------------------------------------------
    _S("FOUNDRY_LOCAL_ENDPOINT", "", "Foundry Local service URL, e.g. http://127.0.0.1:5273. Empty: discover it (embedded server, then the foundry CLI).", "foundry"),
    _S("FOUNDRY_PORT", "52180", "Port of the stack's own embedded Foundry Local server (`invoke foundry.serve`).", "foundry"),
    _S("FOUNDRY_MODEL", "qwen2.5-0.5b", "Catalog model alias the embedded server loads (needs internet the first time).", "foundry"),
    _S("FOUNDRY_MODEL_PATH", "", "Local ONNX Runtime GenAI model folder to serve instead of a catalog model (works offline).", "foundry"),
    # -- Open WebUI ---------------------------------------------------------
    _S("WEBUI_ADMIN_EMAIL", "admin@example.com", "Open WebUI admin account created headlessly on first start (signup is closed afterwards).", "openwebui"),
    _S("WEBUI_ADMIN_PASSWORD", "", "Open WebUI admin password (generated).", "openwebui", secret=True),
    _S("WEBUI_SECRET_KEY", "", "Signs Open WebUI sessions; keeps logins valid across container re-creates (generated).", "openwebui", secret=True),
    # -- Grafana ------------------------------------------------------------
    _S("GRAFANA_ADMIN_USER", "admin", "Grafana admin user.", "grafana"),
    _S("GRAFANA_ADMIN_PASSWORD", "", "Grafana admin password (generated).", "grafana", secret=True),
    # -- managed by `invoke up` (the container view of the discovered Foundry) --
    _S("FOUNDRY_CONTAINER_BASE_URL", "", "Foundry Local as containers see it: the service root, plus /catalogs/local when it serves local models. Set by `invoke up`; pin FOUNDRY_LOCAL_ENDPOINT instead.", "managed", managed=True),
    _S("FOUNDRY_CONTAINER_OPENAI_URL", "", "Foundry Local OpenAI base URL as containers see it. Set by `invoke up`.", "managed", managed=True),
)
del _S

BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}
MANAGED_KEYS: frozenset[str] = frozenset(s.key for s in SETTINGS if s.managed)
SECRET_KEYS: frozenset[str] = frozenset(s.key for s in SETTINGS if s.secret)
PORT_KEYS: tuple[str, ...] = ("OPENWEBUI_PORT", "GRAFANA_PORT", "PROMETHEUS_PORT", "EXPORTER_PORT")

SECTION_TITLES = {
    "stack": "Stack",
    "images": "Images (pinned; override for mirrors or air-gapped registries)",
    "foundry": "Foundry Local",
    "openwebui": "Open WebUI",
    "grafana": "Grafana",
    "managed": "Managed by `invoke up` (discovered; do not edit)",
}

# Compose service names, used by tasks, health waits and tests.
SERVICES: tuple[str, ...] = ("open-webui", "exporter", "prometheus", "grafana")
