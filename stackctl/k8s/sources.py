"""The project files a Kubernetes render is made from: the same ones compose uses.

``read_sources`` is the only I/O of a render: it reads Open WebUI's env file (as
compose reads it), the exporter's and the gateway's stack configs (verbatim, and
checked by their own loaders), the Prometheus rule groups, the generated
dashboards, and the pinned images. Everything after it is a pure function of
the returned :class:`Sources`, so a change to any of these files changes the
render, and nothing else does.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import yaml

from stackctl.config import envfile, settings
from stackctl.config.stack import ROOT
from stackctl.console import cmd
from stackctl.errors import StackError

OPENWEBUI_ENV = "openwebui/openwebui.env"
GATEWAY_CONFIG = settings.GATEWAY_CONFIG
PROMETHEUS_CONFIG = "prometheus/prometheus.yml"
RULES_GLOB = "prometheus/rules/*.yml"


@dataclass(frozen=True)
class Program:
    """The exporter or the gateway as a pod runs it."""

    name: str               # its Prometheus job name, also the name of its k8s objects
    image: str
    config_text: str        # the stack config file, verbatim (its ConfigMap's content)
    config_path: str        # where the program reads it (its --config default)
    port: int               # the port it listens on
    url_env: str            # the env var that points it at Foundry (or at the gateway)
    key_env: str = ""       # the env var holding the gateway's key ("": it sends none)
    metrics_need_key: bool = False
    args: tuple[str, ...] = ()  # beyond --config
    per_user: bool = False  # the gateway counts per Open WebUI user (needs forwarded headers)


@dataclass(frozen=True)
class Sources:
    openwebui_env: dict[str, str]          # openwebui/openwebui.env as compose reads it
    openwebui_image: str
    exporter: Program
    gateway: Program
    rule_files: tuple[str, ...]
    rule_groups: tuple[dict, ...]          # every group of prometheus/rules/*.yml, in file order
    dashboards: dict[str, str]             # grafana/dashboards/<name>.json -> its exact text
    datasource_uid: str                    # the Prometheus datasource uid the dashboards use
    scrape_interval: str
    scrape_timeout: str


def read_sources(root: Path = ROOT, *, gateway_image: str | None = None, registry: str = "") -> Sources:
    """Read and check every source file; a missing or broken one is a StackError naming it."""
    env_path = root / OPENWEBUI_ENV
    openwebui_env = envfile.values(envfile.parse(_text(env_path), OPENWEBUI_ENV))
    prom = _yaml(root / PROMETHEUS_CONFIG)
    glob_ = prom.get("global") or {}
    rule_paths = sorted(Path(p) for p in glob.glob(str(root / RULES_GLOB)))
    if not rule_paths:
        raise StackError(f"no rule files match {RULES_GLOB} — the render carries them as a PrometheusRule")
    groups: list[dict] = []
    for p in rule_paths:
        doc = _yaml(p)
        if not isinstance(doc.get("groups"), list):
            raise StackError(f"{p.relative_to(root)}: no `groups:` list — run `promtool check rules {p}`")
        groups += doc["groups"]
    dash_dir = root / settings.GRAFANA_DASHBOARDS
    dashboards = {p.name: _text(p) for p in sorted(dash_dir.glob("*.json"))}
    if not dashboards:
        raise StackError(f"no dashboards in {settings.GRAFANA_DASHBOARDS} — run `{cmd('dashboards')}` first")
    return Sources(
        openwebui_env=openwebui_env,
        openwebui_image=settings.BY_KEY[settings.OPENWEBUI.image_key].default,
        exporter=_exporter(root, prom, registry),
        gateway=_gateway(root, prom, gateway_image, registry),
        rule_files=tuple(str(p.relative_to(root)) for p in rule_paths),
        rule_groups=tuple(groups),
        dashboards=dashboards,
        datasource_uid=_datasource_uid(root),
        scrape_interval=str(glob_.get("scrape_interval", "15s")),
        scrape_timeout=str(glob_.get("scrape_timeout", "10s")),
    )


def _exporter(root: Path, prom: dict, registry: str) -> Program:
    from foundry_exporter.__main__ import DEFAULT_CONFIG
    from foundry_exporter.config import ConfigError, load_config

    path = root / settings.EXPORTER_CONFIG
    doc = _yaml(path)
    foundry = [t for t in doc.get("targets") or [] if isinstance(t, dict) and t.get("url_env")]
    url_envs = {t["url_env"] for t in foundry}
    key_envs = {t["api_key_env"] for t in foundry if t.get("api_key_env")}
    if len(url_envs) != 1 or len(key_envs) > 1:
        raise StackError(f"{settings.EXPORTER_CONFIG}: expected one url_env (and at most one api_key_env) for "
                         f"Foundry, found {sorted(url_envs)} {sorted(key_envs)} — the render sets them")
    url_env, key_env = url_envs.pop(), (key_envs.pop() if key_envs else "")
    try:
        config = load_config(path, {url_env: "http://foundry.invalid:80", **({key_env: "k" * 32} if key_env else {})})
    except ConfigError as exc:
        raise StackError(f"{settings.EXPORTER_CONFIG} is invalid: {exc.problems[0]} — fix it first") from None
    target = f"{settings.EXPORTER.name}:{settings.EXPORTER.container_port}"
    jobs = [j["job_name"] for j in prom.get("scrape_configs") or []
            if any(target in (s.get("targets") or []) for s in j.get("static_configs") or [])]
    if not jobs:
        raise StackError(f"{PROMETHEUS_CONFIG} has no job scraping {target} — the rules name that job")
    port = int(config.listen_address.rpartition(":")[2])
    image = settings.BY_KEY[settings.EXPORTER.image_key].default
    # With a key to send it probes Foundry through the gateway, as in compose.
    return Program(jobs[0], _registry(registry, image), _text(path), DEFAULT_CONFIG, port, url_env, key_env)


def _gateway(root: Path, prom: dict, image: str | None, registry: str) -> Program:
    from foundry_gateway.__main__ import DEFAULT_CONFIG
    from foundry_gateway.config import (
        DEFAULT_API_KEY_ENV,
        DEFAULT_URL_ENV,
        ConfigError,
        load_config,
    )

    path = root / GATEWAY_CONFIG
    doc = _yaml(path)
    key_env = doc.get("api_key_env") or DEFAULT_API_KEY_ENV
    url_env = ((doc.get("upstreams") or [{}])[0] or {}).get("url_env") or DEFAULT_URL_ENV
    try:
        config = load_config(path, {key_env: "k" * 32, url_env: "http://foundry.invalid:80"})
    except ConfigError as exc:
        raise StackError(f"{GATEWAY_CONFIG} is invalid: {exc.problems[0]} — fix it first") from None
    port = int(config.listen_addresses[0].rpartition(":")[2])
    image = image or settings.BY_KEY[settings.GATEWAY.image_key].default
    return Program(_gateway_job(prom, port), _registry(registry, image), _text(path),
                   DEFAULT_CONFIG, port, url_env, key_env, config.metrics_require_key,
                   # its stack config listens on loopback; a pod listens on its own address
                   ("--listen-address", f"0.0.0.0:{port}"), config.per_user.enabled)


def _gateway_job(prom: dict, port: int) -> str:
    """Compose's Prometheus job for the gateway: the one named like its compose service
    (or its folder), else the one scraping its port; its dashboards and rules say job="…"."""
    folder = Path(GATEWAY_CONFIG).parent.name
    names = [s.name for s in settings.SERVICES if _built_from(s, folder)] + [folder]
    jobs = [j["job_name"] for j in prom.get("scrape_configs") or []]
    by_port = [j["job_name"] for j in prom.get("scrape_configs") or []
               if any(t.endswith(f":{port}") for s in j.get("static_configs") or [] for t in s.get("targets") or [])]
    return next((n for n in names if n in jobs), by_port[0] if by_port else names[0])


def _built_from(service: settings.Service, folder: str) -> bool:
    return service.build == folder or getattr(service, "dockerfile", "").startswith(f"{folder}/")


def _registry(registry: str, image: str) -> str:
    """The stack builds its own images locally; a cluster pulls them from ``registry``."""
    return f"{registry.rstrip('/')}/{image}" if registry else image


def _datasource_uid(root: Path) -> str:
    doc = _yaml(root / settings.GRAFANA_DATASOURCES)
    uids = [d.get("uid") for d in doc.get("datasources") or [] if d.get("uid")]
    if len(uids) != 1:
        raise StackError(f"{settings.GRAFANA_DATASOURCES}: expected one datasource uid, found {uids}")
    return uids[0]


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StackError(f"cannot read {path}: {exc.strerror} — is this a complete checkout?") from None


def _yaml(path: Path) -> dict:
    try:
        doc = yaml.safe_load(_text(path))
    except yaml.YAMLError as exc:
        raise StackError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}) — fix it first") from None
    if not isinstance(doc, dict):
        raise StackError(f"{path}: expected a mapping at the top level — fix it first")
    return doc
