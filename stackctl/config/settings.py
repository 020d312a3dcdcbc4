"""The stack's settings: every default (ports, image tags, names) lives here, once.

compose.yaml reads these keys from .env (``${KEY:?…}``, no defaults of its own);
``.env.example`` is rendered from this table and a unit test fails when it drifts.
The SERVICES table names each compose service with its port key, container port,
image key and data volume; a unit test fails when one of those is written as a
literal anywhere else in the library.
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
    # Never printed, logged or exported (webhook URLs carry tokens). Not ``secret``:
    # that means "generate a random value", which a webhook URL cannot be.
    sensitive: bool = False

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
    _S("ALERTMANAGER_PORT", "9093", "Host port of Alertmanager.", "stack"),
    _S("GATEWAY_PORT", "9180", "Port of the gateway, the one door to Foundry Local: on Linux Engine it listens on loopback and the Docker bridge address (containers reach it as host.docker.internal:PORT).", "stack"),
    _S("STACK_STATE_DIR", ".state", "Where the stack keeps runtime state (embedded Foundry server, logs), relative to the project.", "stack"),
    # -- images (pinned; override for mirrors or air-gapped registries) -----
    _S("OPENWEBUI_IMAGE", "ghcr.io/open-webui/open-webui:v0.12.4", "Open WebUI image.", "images"),
    _S("PROMETHEUS_IMAGE", "prom/prometheus:v3.5.0", "Prometheus image.", "images"),
    _S("GRAFANA_IMAGE", "grafana/grafana:12.2.1", "Grafana image.", "images"),
    _S("EXPORTER_IMAGE", "foundry-chat/exporter:0.1.0", "Exporter image, built from exporter/ on `up`.", "images"),
    _S("EXPORTER_BASE_IMAGE", "python:3.11-slim", "Base image the exporter is built on.", "images"),
    _S("ALERTMANAGER_IMAGE", "prom/alertmanager:v0.28.1", "Alertmanager image.", "images"),
    _S("GATEWAY_IMAGE", "foundry-chat/gateway:0.1.0", "Gateway image, built from gateway/ (and the exporter package it imports) on `up`.", "images"),
    _S("FOUNDRY_KEEPER_IMAGE", "foundry-chat/foundry-keeper:0.1.0", "Image of the keeper that brings the embedded Foundry Local back after a reboot or a daemon restart, built from stackctl/foundry on `up`.", "images"),
    # -- Foundry Local ------------------------------------------------------
    _S("FOUNDRY_LOCAL_ENDPOINT", "", "Foundry Local service URL, e.g. http://127.0.0.1:5273. Empty: discover it (embedded server, then the foundry CLI).", "foundry"),
    _S("FOUNDRY_PORT", "52180", "Port of the stack's own embedded Foundry Local server (`foundry.serve`).", "foundry"),
    _S("FOUNDRY_MODEL", "qwen2.5-0.5b", "Catalog model alias the embedded server loads (needs internet the first time).", "foundry"),
    _S("FOUNDRY_MODEL_PATH", "", "Local ONNX Runtime GenAI model folder to serve instead of a catalog model (works offline).", "foundry"),
    _S("GATEWAY_API_KEY", "", "Key every client of the gateway sends (Open WebUI, the exporter, Prometheus); generated.", "foundry", secret=True),
    _S("EDGE_API_KEY", "", "Key of this machine's edge gateway (`./stack edge`): what another machine's stack sends to use this machine's Foundry Local; generated.", "foundry", secret=True),
    _S("GATEWAY_FLEET_FILE", "", "A gateway config with several upstreams (other machines' edge gateways, a cloud; gateway/fleet.example.yml) used instead of gateway/config.stack.yml, relative to the project. Empty: this machine's Foundry Local only (README, Several machines).", "foundry"),
    _S("GATEWAY_PER_USER", "false", "Count requests and tokens per Open WebUI user at the gateway (true/false; Open WebUI forwards user names; the first 20 users get their own label).", "foundry"),
    # -- Open WebUI ---------------------------------------------------------
    _S("WEBUI_ADMIN_EMAIL", "admin@example.com", "Open WebUI admin account created headlessly on first start (signup is closed afterwards).", "openwebui"),
    _S("WEBUI_ADMIN_PASSWORD", "", "Open WebUI admin password (generated).", "openwebui", secret=True),
    _S("WEBUI_SECRET_KEY", "", "Signs Open WebUI sessions; keeps logins valid across container re-creates (generated).", "openwebui", secret=True),
    # -- Grafana ------------------------------------------------------------
    _S("GRAFANA_ADMIN_USER", "admin", "Grafana admin user.", "grafana"),
    _S("GRAFANA_ADMIN_PASSWORD", "", "Grafana admin password (generated).", "grafana", secret=True),
    # -- alerting: who is notified (none required; empty means nobody is) ---------
    # Read by stackctl/alerting, which renders Alertmanager's config from them.
    _S("ALERT_RECEIVERS", "", "Receiver kinds to notify, comma-separated (webhook, slack, discord, email). Empty: every kind whose keys below are set.", "alerting"),
    _S("ALERT_WEBHOOK_URL", "", "Generic webhook: Alertmanager POSTs its JSON (alerts with runbook annotations) here.", "alerting", sensitive=True),
    _S("ALERT_SLACK_WEBHOOK_URL", "", "Slack incoming-webhook URL (https://hooks.slack.com/services/...).", "alerting", sensitive=True),
    _S("ALERT_SLACK_CHANNEL", "", "Slack channel to post to (e.g. #alerts); empty: the webhook's own channel.", "alerting"),
    _S("ALERT_DISCORD_WEBHOOK_URL", "", "Discord webhook URL (https://discord.com/api/webhooks/...).", "alerting", sensitive=True),
    _S("ALERT_EMAIL_TO", "", "E-mail address that receives alerts (needs ALERT_EMAIL_FROM and ALERT_SMTP_SMARTHOST).", "alerting"),
    _S("ALERT_EMAIL_FROM", "", "Sender address of alert e-mails.", "alerting"),
    _S("ALERT_SMTP_SMARTHOST", "", "SMTP server as host:port, e.g. smtp.example.com:587.", "alerting"),
    _S("ALERT_SMTP_USERNAME", "", "SMTP user name; empty: no authentication.", "alerting"),
    _S("ALERT_SMTP_PASSWORD", "", "SMTP password.", "alerting", sensitive=True),
    _S("ALERT_SMTP_REQUIRE_TLS", "true", "Require STARTTLS to the SMTP server (true/false).", "alerting"),
    _S("ALERT_REPEAT_INTERVAL", "4h", "How often a still-firing alert is sent again (Prometheus duration, e.g. 4h, 1d).", "alerting"),
    # -- managed by `invoke up` (the container view of the discovered Foundry) --
    _S("GATEWAY_UPSTREAM_URL", "", "Foundry Local as the gateway sees it (on the host): the service root, plus /catalogs/local when it serves local models. Set by `up`; pin FOUNDRY_LOCAL_ENDPOINT instead.", "managed", managed=True),
    _S("GATEWAY_UPSTREAM_FOLLOW", "false", "true when the gateway re-finds Foundry Local on a new port by itself (a Foundry found through its CLI: its port changes on each start). Set by `up`; false for FOUNDRY_LOCAL_ENDPOINT and the embedded server.", "managed", managed=True),
    _S("GATEWAY_CONFIG_FILE", "", "The gateway's config as compose mounts it: gateway/config.stack.yml or GATEWAY_FLEET_FILE, checked. Set by `up`.", "managed", managed=True),
    _S("GATEWAY_ENV_FILE", "", "File (0600) with the upstream keys the fleet file names, for the gateway's container only. Set by `up` to <STACK_STATE_DIR>/gateway/upstreams.env.", "managed", managed=True),
    _S("GATEWAY_CONFIG_DIGEST", "", "Digest of the gateway's config and keys: a change re-creates its container. Set by `up`.", "managed", managed=True),
    _S("GATEWAY_LISTEN", "", "Addresses the gateway listens on (loopback and the Docker bridge address). Set by `up`.", "managed", managed=True),
    _S("PROMETHEUS_SECRETS_DIR", "", "Folder (0700) holding the gateway key Prometheus scrapes with and its scrape target. Set by `up` to <STACK_STATE_DIR>/prometheus.", "managed", managed=True),
    _S("FOUNDRY_KEEPER_STATE_DIR", "", "STACK_STATE_DIR as an absolute path: the keeper's container sees it at the same path. Set by `up`.", "managed", managed=True),
    _S("FOUNDRY_KEEPER_MODEL_DIR", "", "The embedded server's model folder (FOUNDRY_MODEL_PATH, else the state dir), mounted read-only at the same path into the keeper's container. Set by `up`.", "managed", managed=True),
    _S("FOUNDRY_KEEPER_USER", "", "uid:gid the keeper's container runs as (the user who ran `up`: the state dir is theirs). Set by `up`.", "managed", managed=True),
    _S("ALERTMANAGER_CONFIG_DIR", "", "Folder holding the rendered alertmanager.yml (0700/0600, it holds the receivers' secrets). Set by `up` to <STACK_STATE_DIR>/alertmanager.", "managed", managed=True),
)
del _S

BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}
MANAGED_KEYS: frozenset[str] = frozenset(s.key for s in SETTINGS if s.managed)
SECRET_KEYS: frozenset[str] = frozenset(s.key for s in SETTINGS if s.secret)
SENSITIVE_KEYS: frozenset[str] = frozenset(s.key for s in SETTINGS if s.sensitive)

SECTION_TITLES = {
    "stack": "Stack",
    "images": "Images (pinned; override for mirrors or air-gapped registries)",
    "foundry": "Foundry Local",
    "openwebui": "Open WebUI",
    "grafana": "Grafana",
    "alerting": "Alerting (who is notified; none set = alerts show in status and Grafana only)",
    "managed": "Managed by `up` (discovered; do not edit)",
}


@dataclass(frozen=True)
class Service:
    """One compose service as the library knows it (compose.yaml is checked against this)."""

    name: str             # compose service name
    title: str            # what people call it
    port_key: str         # .env key of its published host port
    container_port: int   # where it listens inside its container
    image_key: str        # .env key of its image
    volume: str = ""      # its data volume (compose name, without the project prefix)
    profile: str = ""     # the compose profile that enables it; empty: always on
    url_path: str = ""    # appended to its URL for people (e.g. /metrics)
    build: str = ""       # build context (project-relative) when the stack builds its image
    dockerfile: str = ""  # its Dockerfile (project-relative) when not <build>/Dockerfile
    sources: tuple[str, ...] = ()  # what its image is built from (hashed); default: the context
    host_network: bool = False  # listens on the host itself (port = its port key's value)
    internal: bool = False  # nothing for people to open, and its port is not its own to check


OPENWEBUI = Service("open-webui", "Open WebUI", "OPENWEBUI_PORT", 8080, "OPENWEBUI_IMAGE",
                    volume="open-webui-data")
EXPORTER = Service("exporter", "Exporter", "EXPORTER_PORT", 9101, "EXPORTER_IMAGE",
                   url_path="/metrics", build="exporter")
PROMETHEUS = Service("prometheus", "Prometheus", "PROMETHEUS_PORT", 9090, "PROMETHEUS_IMAGE",
                     volume="prometheus-data")
GRAFANA = Service("grafana", "Grafana", "GRAFANA_PORT", 3000, "GRAFANA_IMAGE",
                  volume="grafana-data", profile="grafana")
ALERTMANAGER = Service("alertmanager", "Alertmanager", "ALERTMANAGER_PORT", 9093, "ALERTMANAGER_IMAGE",
                       volume="alertmanager-data")

# Host networking (Linux Engine): it reaches a loopback-only Foundry Local and listens on
# loopback plus the bridge address; no published port, so container_port is its default.
GATEWAY = Service("gateway", "Gateway", "GATEWAY_PORT", 9180, "GATEWAY_IMAGE", url_path="/metrics",
                  build=".", dockerfile="gateway/Dockerfile", host_network=True,
                  sources=("gateway/Dockerfile", "gateway/pyproject.toml", "gateway/README.md",
                           "gateway/config.stack.yml", "gateway/foundry_gateway",
                           "exporter/pyproject.toml", "exporter/README.md", "exporter/foundry_exporter"))

# Host networking and the host's pid namespace (Linux Engine only): when the embedded Foundry
# Local is not running and nothing keeps it (a reboot, SIGKILL of its supervisor), it
# starts it again on the host's loopback (stackctl/foundry/keeper.py). Its "port" is the
# embedded server's, held by whichever process serves it: `up` does not check it.
KEEPER = Service("foundry-keeper", "Foundry keeper", "FOUNDRY_PORT", 52180, "FOUNDRY_KEEPER_IMAGE",
                 build=".", dockerfile="stackctl/foundry/Dockerfile", host_network=True, internal=True,
                 profile="keeper",  # on Linux only (config/stack.py: Stack.profiles)
                 sources=("stackctl/foundry/Dockerfile", "stackctl/__init__.py", "stackctl/errors.py",
                          "stackctl/lock.py", "stackctl/ports.py", "stackctl/console.py", "stackctl/config",
                          "stackctl/foundry", "exporter/pyproject.toml", "exporter/README.md",
                          "exporter/foundry_exporter"))

SERVICES: tuple[Service, ...] = (OPENWEBUI, EXPORTER, PROMETHEUS, GRAFANA, ALERTMANAGER, GATEWAY, KEEPER)
BUILT: tuple[Service, ...] = tuple(s for s in SERVICES if s.build)
BY_SERVICE: dict[str, Service] = {s.name: s for s in SERVICES}
SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)
PORT_KEYS: tuple[str, ...] = tuple(s.port_key for s in SERVICES)
IMAGE_KEYS: tuple[str, ...] = tuple(s.image_key for s in SERVICES)
BASE_IMAGE_KEY = "EXPORTER_BASE_IMAGE"  # what the exporter's own image is built on
VOLUMES: tuple[str, ...] = tuple(s.volume for s in SERVICES if s.volume)
VOLUME_SERVICE: dict[str, str] = {s.volume: s.name for s in SERVICES if s.volume}
FOUNDRY_PORT_KEY = "FOUNDRY_PORT"
ALERTMANAGER_CONFIG_KEY = "ALERTMANAGER_CONFIG_DIR"  # managed: where `up` renders alertmanager.yml
PROMETHEUS_SECRETS_KEY = "PROMETHEUS_SECRETS_DIR"  # managed: the gateway key file + scrape target
GATEWAY_KEY = "GATEWAY_API_KEY"
EDGE_KEY = "EDGE_API_KEY"
FLEET_FILE_KEY = "GATEWAY_FLEET_FILE"
GATEWAY_CONFIG = "gateway/config.stack.yml"

# Project files the checks read (the exporter's stack config, Grafana's provisioning).
EXPORTER_CONFIG = "exporter/config.stack.yml"
GRAFANA_DATASOURCES = "grafana/provisioning/datasources/prometheus.yaml"
GRAFANA_DASHBOARDS = "grafana/dashboards"

# Defaults of command options (tasks.py hands them to invoke with ns.configure).
TASK_DEFAULTS = {"health_timeout": 300, "logs_tail": 200, "bench_rounds": 3}
