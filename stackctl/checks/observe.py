"""The observability checks of `invoke smoke`: exporter, Prometheus, Grafana, Alertmanager.

They never depend on the chat path (a broken Open WebUI must not hide a broken
Prometheus). Verdicts are pure functions over what the services answered
(metrics text, Prometheus API JSON); the check functions only fetch. Facts are
read from their owners: the canary interval from exporter/config.stack.yml, the
datasource uid from Grafana's provisioning file, dashboard uids from
grafana/dashboards/*.json.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from foundry_exporter.durations import parse_duration
from foundry_exporter.metrics import BY_NAME
from stackctl.checks.context import Ctx
from stackctl.checks.runner import Check, Failed, Skipped, Warned
from stackctl.config import settings
from stackctl.config.settings import ALERTMANAGER, EXPORTER, GRAFANA, PROMETHEUS
from stackctl.console import cmd

EXPORTER_CONFIG = Path(settings.EXPORTER_CONFIG)
DATASOURCES = Path(settings.GRAFANA_DATASOURCES)
DASHBOARDS = Path(settings.GRAFANA_DASHBOARDS)
PROM_SETTLE_S = 35.0  # a just-started Prometheus: first scrape + first rule evaluation
PROBE_SETTLE_S = 30.0  # the exporter's next listing probe: its interval (15 s) + timeout (10 s)

FIX_EXPORTER = f"`{cmd('logs exporter')}`, then `{cmd('up')}` (restarts it and waits for health)"
FIX_PROMETHEUS = f"`{cmd('logs prometheus')}`, then `{cmd('up')}` (restarts it and waits for health)"
FIX_GRAFANA = f"`{cmd('logs grafana')}`, then `{cmd('up')}`"
FIX_ALERTMANAGER = f"`{cmd('logs alertmanager')}`, then `{cmd('up')}` (renders its config and restarts it)"


# -- pure verdicts -------------------------------------------------------------------


def _seconds(value: Any, default: float) -> float:
    """The exporter's own duration grammar; a missing or bad value takes ``default``."""
    if value is None:
        return default
    try:
        return parse_duration(value)
    except ValueError:
        return default


def _declared(name: str) -> str:
    """A metric the exporter declares: importing this module fails if it stops declaring it."""
    if name not in BY_NAME:
        raise RuntimeError(f"the exporter no longer declares {name}; update stackctl/checks/observe.py")
    return name


UP = _declared("foundry_up")
PROBE_SUCCESS = _declared("foundry_probe_success")
PROBE_LAST_TIMESTAMP = _declared("foundry_probe_last_timestamp_seconds")
LAST_SKIP_TIMESTAMP = _declared("foundry_canary_last_skip_timestamp_seconds")


def canary_max_age(config_text: str | None) -> float:
    """Seconds after which the Foundry target's chat canary counts as stale:
    two canary intervals plus the probe timeout (exporter config). Pure."""
    doc = (yaml.safe_load(config_text) if config_text else None) or {}
    defaults = doc.get("defaults") or {}
    interval = _seconds(defaults.get("interval"), 30.0)
    timeout = _seconds(defaults.get("timeout"), 10.0)
    for t in doc.get("targets") or []:
        if isinstance(t, dict) and t.get("kind") == "foundry":
            every = _seconds(t.get("interval"), interval)
            every = _seconds((t.get("canary") or {}).get("interval"), every)
            return 2 * every + _seconds(t.get("timeout"), timeout)
    return 2 * interval + timeout


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text)
            for s in fam.samples]


def exporter_verdict(text: str, now: float, max_age: float, back_since: float | None = None) -> str:
    """Detail of a pass, or Failed: up=1 for a foundry target and a fresh, successful canary
    (or one that is stale only because it yields to users' chats: see _yielding_verdict).

    ``back_since``: when smoke itself just reached Foundry Local (a timestamp). An up=0
    from a probe older than that is the exporter not having probed since Foundry came
    back — Warned (rerun later), never "cannot reach it from its container"."""
    rows = samples(text)
    ups = {lab["target"]: v for n, lab, v in rows if n == UP and lab.get("kind") == "foundry"}
    if not ups:
        raise Failed("the exporter has no Foundry Local target (no foundry_up{kind=\"foundry\"})",
                     f"check exporter/config.stack.yml, then `{cmd('up')}`")
    target = next((t for t, v in ups.items() if v == 1), None)
    if target is None and back_since is not None:
        last = max((v for n, lab, v in rows if n == PROBE_LAST_TIMESTAMP and lab.get("target") in ups),
                   default=None)
        if last is not None and last < back_since:
            raise Warned(f"the exporter last probed Foundry Local {now - last:.0f}s ago and found it down; "
                         "Foundry answers now, so it has simply not probed since",
                         f"rerun `{cmd('smoke')}` in a minute (after the exporter's next probe)")
    if target is None:
        names = ", ".join(sorted(ups))
        raise Failed(f"the exporter reports foundry_up=0 for {names}: it cannot reach Foundry Local "
                     "from its container", f"`{cmd('doctor')}` (Foundry reachable from a container?); "
                     f"`{cmd('logs exporter')}`")

    def one(name: str) -> float | None:
        return next((v for n, lab, v in rows if n == name and lab.get("target") == target
                     and lab.get("probe") == "chat"), None)

    stamp, success = one(PROBE_LAST_TIMESTAMP), one(PROBE_SUCCESS)
    if stamp is None:
        raise Failed(f"the exporter has not run a chat canary against {target} yet",
                     f"rerun `{cmd('smoke')}` in a minute; if it persists, `{cmd('logs exporter')}`")
    age = now - stamp
    if age > max_age:
        return _yielding_verdict(rows, target, age, success, now, max_age)
    if success != 1 and back_since is not None and stamp < back_since:
        # e.g. `up` had just re-created the gateway (its door): smoke's own chats work now.
        raise Warned(f"the last chat canary against {target} failed {age:.0f}s ago, before smoke "
                     "reached Foundry Local; the exporter has not run it since",
                     f"rerun `{cmd('smoke')}` in a minute (after the exporter's next canary)")
    if success != 1:
        raise Failed(f"the last chat canary against {target} failed ({age:.0f}s ago)",
                     f"`{cmd('doctor')}`; if you just fixed Foundry, rerun `{cmd('smoke')}` after the next "
                     "canary (≤ the canary interval)")
    return f"foundry_up{{target=\"{target}\"}}=1; chat canary ok {age:.0f}s ago (fresh < {max_age:.0f}s)"


def _yielding_verdict(rows: list[tuple[str, dict[str, str], float]], target: str, age: float,
                      success: float | None, now: float, max_age: float) -> str:
    """A chat canary older than ``max_age``: stuck, unless the exporter skipped a due round
    for this target within ``max_age`` — then it yields to users' chats (its stamp only
    moves when it runs), which is the stack working as designed."""
    skip = next((v for n, lab, v in rows if n == LAST_SKIP_TIMESTAMP and lab.get("target") == target), None)
    if skip is None or now - skip > max_age:
        raise Failed(f"the last chat canary ran {age:.0f}s ago (stale after {max_age:.0f}s): "
                     "the probe loop is stuck", FIX_EXPORTER)
    yielding = f"canary yielding to users' chats (last skip {now - skip:.0f}s ago)"
    if success != 1:
        raise Warned(f"the last chat canary against {target} failed ({age:.0f}s ago); since then the {yielding}",
                     "if chats answer in Open WebUI, nothing to do (the canary runs again once they pause); "
                     f"else `{cmd('doctor')}`")
    return f"foundry_up{{target=\"{target}\"}}=1; {yielding}; its last run, {age:.0f}s ago, was ok"


def targets_verdict(payload: dict, since: float | None = None) -> tuple[str | None, str | None]:
    """(problem, pending) for /api/v1/targets: a down target is a problem; an
    unknown one (not scraped yet) is pending, and so is one found down by a scrape
    older than ``since`` (epoch seconds: when the check began) — e.g. the gateway
    re-created by the `up` just before: its next scrape decides. Pure."""
    active = (payload.get("data") or {}).get("activeTargets") or []
    if not active:
        return "Prometheus has no scrape targets", None
    down = [t for t in active if t.get("health") == "down"]
    stale = [t for t in down if since is not None and (at := scraped_at(t)) is not None and at < since]
    if len(stale) < len(down):
        parts = [f"{t.get('labels', {}).get('job', '?')} ({t.get('scrapeUrl', '?')}: "
                 f"{t.get('lastError') or 'down'})" for t in down if t not in stale]
        return "Prometheus target down: " + "; ".join(parts), None
    waiting = [f"{t.get('labels', {}).get('job', '?')} (down at its last scrape, before this check)" for t in stale]
    unknown = [t.get("labels", {}).get("job", "?") for t in active if t.get("health") not in ("up", "down")]
    pending = (["not scraped yet: " + ", ".join(unknown)] if unknown else []) + waiting
    return None, "; ".join(pending) or None


def scraped_at(target: dict) -> float | None:
    """A target's ``lastScrape`` (RFC 3339, nanoseconds) as epoch seconds, or None. Pure."""
    from datetime import datetime

    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", target.get("lastScrape") or "")
    if not m or m.group(1).startswith("0001"):  # Go's zero time: never scraped
        return None
    frac = float(m.group(2) or 0)
    return datetime.fromisoformat(m.group(1) + m.group(3).replace("Z", "+00:00")).timestamp() + frac


def rules_verdict(payload: dict) -> tuple[str | None, list[str]]:
    """(problem, recording rule names) for /api/v1/rules. Pure."""
    groups = (payload.get("data") or {}).get("groups") or []
    rules = [r for g in groups for r in g.get("rules") or []]
    if not rules:
        return "Prometheus has loaded no rules", []
    broken = [f"{r.get('name')}: {r.get('lastError')}" for r in rules if r.get("health") == "err"]
    if broken:
        return "rules failing: " + "; ".join(broken[:3]), []
    return None, list(dict.fromkeys(r["name"] for r in rules if r.get("type") == "recording"))


# -- checks -------------------------------------------------------------------------------


def check_exporter(ctx: Ctx, now: Callable[[], float] = time.time, settle: float = PROBE_SETTLE_S,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> str:
    """The exporter's view of Foundry. When its last probe predates Foundry answering
    smoke, wait (bounded) for its next probe rather than guess which one is right."""
    url = ctx.stack.api_url(EXPORTER.port_key) + EXPORTER.url_path
    cfg = ctx.stack.root / EXPORTER_CONFIG
    max_age = canary_max_age(cfg.read_text() if cfg.exists() else None)
    deadline = clock() + settle
    while True:
        try:
            r = ctx.http.get(url, timeout=5)
        except httpx.HTTPError as err:
            raise Failed(f"the exporter at {url} does not answer ({type(err).__name__})", FIX_EXPORTER) from None
        if r.status_code != 200:
            raise Failed(f"the exporter's /metrics answers HTTP {r.status_code}", FIX_EXPORTER)
        try:
            return exporter_verdict(r.text, now(), max_age, ctx.notes.get("foundry_answered_at"))
        except Warned:
            if clock() >= deadline:
                raise
        sleep(1.0)


def _prom_get(ctx: Ctx, path: str, **params: str) -> dict:
    base = ctx.stack.api_url(PROMETHEUS.port_key)
    try:
        r = ctx.http.get(base + path, params=params or None, timeout=5)
        r.raise_for_status()
        return r.json()
    except httpx.HTTPError as err:
        raise Failed(f"Prometheus at {base} does not answer {path} ({type(err).__name__})",
                     FIX_PROMETHEUS) from None


def check_prometheus(ctx: Ctx, settle: float = PROM_SETTLE_S,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep,
                     now: Callable[[], float] = time.time) -> str:
    """Targets up, rules loaded, a recording rule with data. Waits (bounded) only
    while Prometheus is still taking its first scrape / rule evaluation, or its next
    scrape of a target that was down before the check began."""
    deadline, since = clock() + settle, now()
    while True:
        targets = _prom_get(ctx, "/api/v1/targets")
        problem, pending = targets_verdict(targets, since if clock() < deadline else None)
        if problem:
            fix = FIX_EXPORTER if "foundry-exporter" in problem else FIX_PROMETHEUS
            raise Failed(problem, fix)
        problem, recording = rules_verdict(_prom_get(ctx, "/api/v1/rules"))
        if problem:
            raise Failed(problem, f"`{cmd('logs prometheus')}`; check prometheus/rules/ with promtool")
        with_data: list[str] = []
        if recording:
            names = "|".join(n for n in recording if re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", n))
            expr = f'group by (__name__) ({{__name__=~"{names}"}})'
            res = _prom_get(ctx, "/api/v1/query", query=expr)
            with_data = sorted(s["metric"]["__name__"] for s in (res.get("data") or {}).get("result") or [])
        if not pending and with_data:
            return (f"all targets up; {len(recording)} recording rules loaded, "
                    f"{len(with_data)} with data (e.g. {with_data[0]})")
        if clock() >= deadline:
            what = pending or ("no recording rule has data yet" if recording else "no recording rules")
            raise Failed(f"Prometheus: {what}", f"if the stack just started, rerun `{cmd('smoke')}` "
                         "in a minute; else " + FIX_PROMETHEUS)
        sleep(1.0)


def alertmanagers_verdict(payload: dict) -> str:
    """The URL Prometheus sends alerts to, or Failed unless it is the stack's
    Alertmanager (service name and container port, as compose wires it). Pure."""
    data = payload.get("data") or {}
    want = f"//{ALERTMANAGER.name}:{ALERTMANAGER.container_port}/"
    urls = [a.get("url", "") for a in data.get("activeAlertmanagers") or []]
    ours = [u for u in urls if want in u]
    if ours:
        return ours[0]
    dropped = [a.get("url", "") for a in data.get("droppedAlertmanagers") or []]
    raise Failed(f"Prometheus sends alerts to {', '.join(urls) or 'no Alertmanager'}"
                 + (f" (dropped: {', '.join(dropped)})" if dropped else "")
                 + f"; expected {ALERTMANAGER.name}:{ALERTMANAGER.container_port}",
                 f"check the alerting: section of prometheus/prometheus.yml, then `{cmd('up')}`")


def check_alertmanager(ctx: Ctx) -> str:
    """Alertmanager answers healthy, and Prometheus delivers its alerts to it."""
    base = ctx.stack.api_url(ALERTMANAGER.port_key)
    try:
        r = ctx.http.get(base + "/-/healthy", timeout=5)
    except httpx.HTTPError as err:
        raise Failed(f"Alertmanager at {base} does not answer ({type(err).__name__})",
                     FIX_ALERTMANAGER) from None
    if r.status_code != 200:
        raise Failed(f"Alertmanager /-/healthy answers HTTP {r.status_code}", FIX_ALERTMANAGER)
    url = alertmanagers_verdict(_prom_get(ctx, "/api/v1/alertmanagers"))
    return f"{base} healthy; Prometheus sends its alerts to {url}"


def check_grafana(ctx: Ctx) -> str:
    stack = ctx.stack
    if GRAFANA.profile not in stack.profiles:
        raise Skipped("not running (grafana is not in COMPOSE_PROFILES)")
    base = stack.api_url(GRAFANA.port_key)
    auth = (stack.env.get("GRAFANA_ADMIN_USER", "admin"), stack.env.get("GRAFANA_ADMIN_PASSWORD", ""))
    try:
        health = ctx.http.get(base + "/api/health", timeout=5)
    except httpx.HTTPError as err:
        raise Failed(f"Grafana at {base} does not answer ({type(err).__name__})", FIX_GRAFANA) from None
    if health.status_code != 200 or (health.json() or {}).get("database") != "ok":
        raise Failed(f"Grafana /api/health: HTTP {health.status_code} {health.text[:120]}", FIX_GRAFANA)
    uid = _datasource_uid(stack.root)
    ds = ctx.http.get(f"{base}/api/datasources/uid/{uid}/health", auth=auth, timeout=15)
    if ds.status_code in (401, 403):
        raise Failed("Grafana rejected GRAFANA_ADMIN_USER/PASSWORD from .env",
                     "if you changed the password in Grafana, put it in .env (or reset it with "
                     "`grafana cli admin reset-admin-password`)")
    if ds.status_code != 200 or (ds.json() or {}).get("status") != "OK":
        raise Failed(f"Grafana datasource {uid} is not working: HTTP {ds.status_code} {ds.text[:160]}",
                     f"check Prometheus (above); `{cmd('logs grafana')}`")
    want = _dashboard_uids(stack.root)
    found = {d.get("uid") for d in ctx.http.get(base + "/api/search", params={"type": "dash-db"},
                                                auth=auth, timeout=5).json()}
    missing = sorted(want - found)
    if missing:
        raise Failed(f"dashboards not provisioned: {', '.join(missing)}",
                     f"`{cmd('logs grafana')}` (provisioning errors); then `{cmd('up')}`")
    return f"{base} healthy; datasource {uid} OK; dashboards {', '.join(sorted(want))} provisioned"


def _datasource_uid(root: Path) -> str:
    sources = yaml.safe_load((root / DATASOURCES).read_text())["datasources"]
    return next(s["uid"] for s in sources if s.get("type") == "prometheus")  # same word, another fact: a Grafana datasource type


def _dashboard_uids(root: Path) -> set[str]:
    return {json.loads(p.read_text())["uid"] for p in sorted((root / DASHBOARDS).glob("*.json"))}


CHECKS: tuple[Check, ...] = (
    Check(EXPORTER.name, check_exporter),
    Check(PROMETHEUS.name, check_prometheus),
    Check(GRAFANA.name, check_grafana),
    Check(ALERTMANAGER.name, check_alertmanager),
)
