"""`invoke up`: from a fresh clone to a healthy stack, idempotently.

Order matters and each step fails with one line and nothing half-done:
.env → Alertmanager config → Docker → compose → ports → images (pull, build the exporter
and the gateway) → Foundry (discover, else serve the embedded one, loopback only) → the
gateway up → Foundry reachable FROM A CONTAINER through the gateway, with its key →
compose up → health → reconcile Open WebUI's stored connection (the gateway + its key). Re-running on a healthy, unchanged
stack changes nothing (compose sees no diff; reconcile sees no diff).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from stackctl import openwebui
from stackctl.alerting import deploy as alert_config
from stackctl.config import envfile
from stackctl.config.settings import ALERTMANAGER, BUILT, GATEWAY, GATEWAY_KEY, OPENWEBUI
from stackctl.config.stack import Stack, ensure_stack
from stackctl.console import Reporter
from stackctl.docker import compose as composer
from stackctl.docker import engine, health, images
from stackctl.errors import StackError
from stackctl.fleet import stackconfig
from stackctl.foundry import bridge, door
from stackctl.foundry import view as foundry_link
from stackctl.lifecycle.reset_admin import foreign_data_message
from stackctl.ports import busy_ports, own_ports


@dataclass
class UpResult:
    stack: Stack
    foundry: foundry_link.FoundryView
    urls: dict[str, str] = field(default_factory=dict)
    env_added: list[str] = field(default_factory=list)
    reconciled: bool = False
    started_embedded: bool = False
    seconds: float = 0.0


def preflight_ports(stack: Stack, own_ports: set[int]) -> None:
    busy = [f"{port} ({key})" for port, key in busy_ports(stack, own_ports)]
    if busy:
        raise StackError(
            f"port {', '.join(busy)} is already in use on {stack.bind} by another program — "
            "stop that program or choose another port in .env, then retry", exit_code=2
        )


def up(*, model: str | None = None, model_path: str | None = None, timeout: float = 300.0,
       reporter: Reporter | None = None) -> UpResult:
    r = reporter or Reporter.quiet()
    t0 = time.monotonic()
    stack, added = ensure_stack()
    if added:
        r.ok(f"created {stack.env_file.name} (mode 0600) with {len(added)} settings; secrets generated")
    if foundry_link.remember_model(stack, model, model_path, r):  # validated, then kept for later runs
        stack = stack.with_env(envfile.load(stack.env_file))
    # Alertmanager's config from .env, first: a bad ALERT_* value stops here, nothing started.
    # Its folder reaches .env (a managed key) only once every preflight has passed: a
    # refused `up` leaves .env as it was.
    am_env, am_changed = alert_config.render_for(stack)
    stackconfig.check(stack)  # the gateway's config (a fleet file) too: nothing started yet
    if am_changed:
        r.ok(f"Alertmanager config rendered into {alert_config.config_dir(stack)} (mode 0600)")
    client = engine.client()
    compose = composer.find()
    r.ok(f"Docker Engine reachable; using {compose.label}")

    own = engine.services(client, stack.project)
    preflight_ports(stack, own_ports(stack, engine.published_ports(own), own))

    _ensure_images(client, stack, r)  # all of them, before anything starts
    view, started = foundry_link.ensure(stack, model=model, model_path=model_path, reporter=r)
    env_before = stack.env_file.read_bytes()
    try:
        managed = door.managed_env(stack, view.upstream_url, bridge.gateway_ip(), follow=door.follows(view.source))
        managed |= stackconfig.prepare(stack, managed)  # a bad fleet file stops here
        managed |= foundry_link.keep(stack, view)
        secrets_env, _ = door.render_prometheus_secrets(stack)
        # Every preflight has passed: now the managed keys reach .env (compose needs all).
        if envfile.set_managed(stack.env_file, managed | secrets_env | am_env):
            r.ok(f"gateway: {managed['GATEWAY_LISTEN']} → Foundry Local at {view.upstream_url}"
                 + (" (followed to its new port when it restarts)" if door.follows(view.source) else ""))
        stack = stack.with_env(envfile.load(stack.env_file))
        _start_gateway(client, compose, stack, timeout)
        ok, detail = engine.curl_from_container(client, stack.env[OPENWEBUI.image_key],
                                                view.container_openai_url + "/models",
                                                bearer=stack.env[GATEWAY_KEY])
        if not ok:
            raise StackError(foundry_link.unreachable_message(view, detail))
    except BaseException:  # leave the machine as we found it: containers, Foundry, .env
        if GATEWAY.name not in own:
            composer.run(compose, stack, "rm", "-fs", GATEWAY.name, check=False)
        envfile.write_atomic(stack.env_file, env_before.decode())
        if started:
            foundry_link.stop_embedded(stack)
            r.warn("stopped the embedded Foundry Local this run had started")
        raise
    r.ok(f"Foundry Local is reachable from a container through the gateway "
         f"({view.container_openai_url}, key required)")
    r.step("starting containers")
    composer.run(compose, stack, "up", "-d", "--no-build", "--remove-orphans")
    with r.status("waiting for services to be healthy") as st:
        health.wait_healthy(
            stack.services, lambda: engine.services(client, stack.project), timeout=timeout,
            report=lambda states: st.update(_summary(stack.services, states)),
        )
    r.ok("all services healthy")
    if alert_config.reload_if_changed(stack, am_changed, ALERTMANAGER.name in own):
        r.ok("Alertmanager reloaded its new config")

    try:
        ui = openwebui.login(openwebui.OpenWebUI(stack.api_url(OPENWEBUI.port_key)),
                             stack.env["WEBUI_ADMIN_EMAIL"], stack.env["WEBUI_ADMIN_PASSWORD"],
                             stack.state_dir)
    except openwebui.CredentialsRejected:  # data of an earlier install: stop, explain, offer ways out
        composer.run(compose, stack, "stop", check=False)
        if started:
            foundry_link.stop_embedded(stack)
            r.warn("stopped the embedded Foundry Local this run had started")
        raise StackError(foreign_data_message(stack, "WEBUI_ADMIN_PASSWORD" in added)) from None
    changed = openwebui.reconcile(ui, view.container_openai_url, stack.env[GATEWAY_KEY])
    if changed:
        r.ok(f"Open WebUI connection set to the gateway {view.container_openai_url} "
             "(it lists the loaded chat models live)")
    return UpResult(stack=stack, foundry=view, urls=stack.urls, env_added=added,
                    reconciled=changed, started_embedded=started, seconds=time.monotonic() - t0)


def _ensure_images(client, stack: Stack, r: Reporter) -> None:
    stale = [(svc, digest) for svc in BUILT if svc.name in stack.services
             for fresh, digest in [images.up_to_date(client, stack, svc)] if not fresh]
    images.ensure_present(client, stack, images.needed(stack, not stale),
                          lambda ref: engine.image_present(client, ref), r)
    for svc, digest in stale:
        r.step(f"building the {svc.name} image ({stack.env[svc.image_key]})")
        images.build(stack, svc, digest)


def _start_gateway(client, compose, stack: Stack, timeout: float) -> None:
    """The gateway first: the reachability check from a container goes through it."""
    composer.run(compose, stack, "up", "-d", "--no-build", GATEWAY.name)
    health.wait_healthy((GATEWAY.name,), lambda: engine.services(client, stack.project),
                        timeout=min(timeout, 120.0))


def _summary(expected, states) -> str:
    parts = []
    for svc in expected:
        s = states.get(svc)
        parts.append(f"{svc}: {'—' if s is None else (s.health if s.health != 'none' else s.state)}")
    return "  ".join(parts)
