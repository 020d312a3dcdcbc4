"""`doctor`: the troubleshooting steps users otherwise do by hand, as checks.

Setup checks (.env, Docker, Foundry incl. reachability from a container, ports and
services) are here; the Open WebUI checks are the chat path's own (chat.py), so
doctor and smoke never disagree on what "connected" means. Exit code by severity:
0 all ok, 1 warnings, 2 errors. No result ever contains a secret value.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from stackctl.alerting import CONFIG_NAME, deploy, enabled_receivers, render, timings_from
from stackctl.checks import chat
from stackctl.checks.context import Ctx, need_openwebui, need_stack
from stackctl.checks.runner import (
    FAIL,
    WARN,
    Check,
    Report,
    Result,
    fail,
    ok,
    run_checks,
    warn,
)
from stackctl.config import envfile
from stackctl.config.settings import GATEWAY_KEY, GRAFANA, OPENWEBUI, SECRET_KEYS
from stackctl.config.stack import ROOT, env_file_path, load_stack
from stackctl.console import cmd
from stackctl.docker import compose as composer
from stackctl.docker import engine
from stackctl.errors import StackError, UsageError
from stackctl.fleet import upstreams
from stackctl.foundry import view as foundry_view
from stackctl.ports import busy_ports, own_ports


def check_env(ctx: Ctx) -> Iterator[Result]:
    path = env_file_path(ROOT)
    if not path.exists():
        yield fail("env", f"{path} does not exist", f"run `{cmd('up')}` (it creates it)")
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        yield fail("env", f"{path.name} is readable by others (mode {mode:o}); it holds secrets",
                   f"chmod 600 {path}")
    else:
        yield ok("env", f"{path.name} exists with mode 600")
    if ctx.stack is None:  # names the key, the value and the rule
        yield fail("env", ctx.stack_problem, f"correct that line in .env, then `{cmd('doctor')}` again")
        return
    raw = envfile.values(envfile.read(path))
    weak = [k for k in sorted(SECRET_KEYS) if len(raw.get(k, "")) < 12]
    if weak:
        yield fail("secrets", f"{', '.join(weak)} missing or shorter than 12 characters",
                   f"delete those lines from .env and run `{cmd('up')}` to generate new ones")
    else:
        yield ok("secrets", "generated secrets present")
    if ctx.stack.bind not in ("127.0.0.1", "::1"):
        yield warn("security", f"published ports bind to {ctx.stack.bind}: reachable from your network",
                   "set STACK_BIND_ADDRESS=127.0.0.1 in .env unless you opened the stack on purpose "
                   "(README, Security)")


def check_docker(ctx: Ctx) -> Iterator[Result]:
    ctx.docker  # noqa: B018 - raises StackError with the fix when unreachable
    yield ok("docker", "Docker Engine reachable")
    c = composer.find()
    yield ok("compose", f"compose found: {c.label}")
    root = ctx.docker.info().get("DockerRootDir", "/var/lib/docker")
    probe = Path(root) if Path(root).exists() else ROOT
    free_gib = shutil.disk_usage(probe).free / 2**30
    if free_gib < 1:
        yield fail("disk", f"only {free_gib:.1f} GiB free under {probe}", "free disk space (`docker system df`)")
    elif free_gib < 5:
        yield warn("disk", f"{free_gib:.1f} GiB free under {probe}; images need ~4 GiB",
                   "free disk space (`docker system df`)")
    else:
        yield ok("disk", f"{free_gib:.0f} GiB free under {probe}")


def check_foundry(ctx: Ctx) -> Iterator[Result]:
    assert ctx.stack is not None
    view, reason = (ctx.discover or foundry_view.current)(ctx.stack)
    if view is None:
        yield fail("foundry", foundry_view.not_found_detail(reason),
                   f"start Foundry Local, or `{cmd('foundry.serve --model-path DIR')}`, or set "
                   "FOUNDRY_LOCAL_ENDPOINT in .env")
        return
    ctx.view = view
    yield ok("foundry", f"Foundry Local at {view.root_url} ({view.source}, {view.generation})")
    if not view.chat_models:
        yield fail("models", "no chat model is loaded", chat.FIX_NO_MODEL)
    else:
        yield ok("models", f"loaded: {', '.join(view.chat_models)}")
    if view.binds_everywhere:
        yield warn("security", "the embedded Foundry server listens on all addresses; its "
                   "POST /shutdown needs no authentication", "restart it without --host 0.0.0.0")
    image = ctx.stack.env[OPENWEBUI.image_key]
    if not engine.image_present(ctx.docker, image):
        yield warn("container-reach", f"not checked: {image} is not on this machine yet",
                   f"`{cmd('up')}` pulls it and checks reachability from a container")
        return
    ok_, detail = engine.curl_from_container(ctx.docker, image, view.container_openai_url + "/models",
                                             bearer=ctx.stack.env.get(GATEWAY_KEY))
    if ok_:
        yield ok("container-reach", f"reachable from a container through the gateway at "
                 f"{view.container_openai_url}")
    else:
        yield fail("container-reach", f"not reachable from a container ({detail})",
                   foundry_view.unreachable_fix(view))


def check_services(ctx: Ctx) -> Iterator[Result]:
    assert ctx.stack is not None
    states = engine.services(ctx.docker, ctx.stack.project)
    for port, key in busy_ports(ctx.stack, own_ports(ctx.stack, engine.published_ports(states), states)):
        yield fail("ports", f"port {port} ({key}) is taken by another program",
                   f"stop it or set {key} to a free port in .env")
    for svc in ctx.stack.services:
        s = states.get(svc)
        if s is None:
            yield warn(svc, "not running", f"`{cmd('up')}`")
        elif not s.ok:
            yield fail(svc, f"{s.state}, {s.health}", f"`{cmd(f'logs {svc}')}`; then `{cmd('up')}`")
        elif s.restarts:
            yield warn(svc, f"healthy but restarted {s.restarts}×", f"`{cmd(f'logs {svc}')}` for the cause")
        else:
            yield ok(svc, "running, healthy")
        if svc == GRAFANA.name and s is not None:
            env = ctx.docker.containers.get(s.container).attrs["Config"].get("Env") or []
            anon = [e.partition("=")[2].lower() for e in env if e.startswith("GF_AUTH_ANONYMOUS_ENABLED=")]
            if anon and anon[-1] == "true":
                yield warn("security", "Grafana allows anonymous access",
                           f"remove GF_AUTH_ANONYMOUS_ENABLED=true and run `{cmd('up')}`")
        if s and any(not p.startswith(("127.0.0.1:", "::1:", "[::1]:")) for p in s.ports) \
                and ctx.stack.bind in ("127.0.0.1", "::1"):
            yield warn("security", f"{svc} publishes a port beyond loopback: {', '.join(s.ports)}",
                       f"`{cmd('up')}` re-creates it with the .env bind address")


FIX_NO_RECEIVER = (
    "set one of ALERT_WEBHOOK_URL, ALERT_SLACK_WEBHOOK_URL, ALERT_DISCORD_WEBHOOK_URL, or "
    "ALERT_EMAIL_TO + ALERT_EMAIL_FROM + ALERT_SMTP_SMARTHOST in .env (README, Alerting), then "
    f"`{cmd('up')}`; `{cmd('alerts --test')}` proves delivery"
)


def check_alerting(ctx: Ctx) -> Iterator[Result]:
    """Who alerts reach (receiver kinds only: their URLs hold tokens), and whether the
    config Alertmanager runs with is the one .env describes."""
    assert ctx.stack is not None
    try:
        render(ctx.stack.env, timings=timings_from(os.environ))
        kinds = enabled_receivers(ctx.stack.env)
    except UsageError as err:  # names the key, never a sensitive value
        yield fail("alerting", str(err), f"correct that line in .env, then `{cmd('up')}`")
        return
    if kinds:
        yield ok("alerting", f"alerts are sent to: {', '.join(kinds)}")
    else:
        yield warn("alerting", "no alert receiver is set: alerts reach nobody (they show only in "
                   f"`{cmd('alerts')}` and Grafana)", FIX_NO_RECEIVER)
    if not (deploy.config_dir(ctx.stack) / CONFIG_NAME).is_file():
        yield warn("alerting", "Alertmanager's config has not been rendered yet", f"`{cmd('up')}`")
    elif not deploy.config_is_current(ctx.stack):
        yield warn("alerting", "Alertmanager runs with an older config than .env describes",
                   f"`{cmd('up')}` (renders it and reloads Alertmanager)")


def check_signup(ctx: Ctx) -> Iterator[Result]:
    assert ctx.ui is not None
    cfg = ctx.ui.get("/api/config").json()
    if (cfg.get("features") or {}).get("enable_signup"):
        yield warn("security", "Open WebUI allows public signup",
                   "Admin Panel → Settings → General → disable 'Enable New Sign Ups'")
    else:
        yield ok("signup", "Open WebUI signup is closed")


def _after(*guards):
    """Skip reason of the first guard that has one (doctor needs .env before anything)."""
    return lambda ctx: next((r for g in guards if (r := g(ctx))), None)


CHECKS: tuple[Check, ...] = (
    Check("env", check_env),
    Check("docker", check_docker, need_stack),
    Check("foundry", check_foundry, need_stack),
    Check("services", check_services, need_stack),
    Check("upstreams", upstreams.check_upstreams, need_stack),  # only with a fleet file
    Check("alerting", check_alerting, need_stack),
    Check(OPENWEBUI.name, chat.check_openwebui, need_stack),
    Check("signup", check_signup, _after(need_stack, need_openwebui)),
    *(Check(c.name, c.run, _after(need_stack, c.needs)) for c in chat.CHECKS
      if c.name in ("sign-in", "connection", "models")),
)


def exit_code(report: Report) -> int:
    """0 all ok, 1 warnings, 2 errors."""
    return 2 if report.count(FAIL) else 1 if report.count(WARN) else 0


def total(report: Report) -> str:
    return f"{report.count(FAIL)} error(s), {report.count(WARN)} warning(s)"


def run_doctor(checks: Sequence[Check] = CHECKS) -> Report:
    try:
        stack, problem = load_stack(), ""
    except StackError as err:
        stack, problem = None, str(err)
    ctx = Ctx(stack=stack, stack_problem=problem)
    try:
        return run_checks(checks, ctx)
    finally:
        ctx.close()
