"""`up down status logs doctor smoke alerts`: the running stack, from the command line."""

from __future__ import annotations

import json as jsonlib
import sys
from pathlib import Path

from invoke import Collection, Exit, task

from stackctl.cli import R, edge
from stackctl.config.settings import BY_SERVICE, SERVICE_NAMES, TASK_DEFAULTS
from stackctl.console import cmd
from stackctl.errors import StackError, UsageError
from stackctl.lock import locked


@task(help={
    "model": "Catalog model alias for the embedded Foundry server, if one must be started.",
    "model-path": "Local ONNX Runtime GenAI model folder to serve instead (works offline).",
    "timeout": f"Seconds to wait for the services to become healthy (default {TASK_DEFAULTS['health_timeout']}).",
})
@edge
@locked("up")
def up(c, model=None, model_path=None, timeout=None):
    """Start the stack (creates .env, finds or serves Foundry Local, waits for health)."""
    from stackctl.lifecycle.up import up as do_up

    res = do_up(model=model, model_path=model_path,
                timeout=float(timeout or c.config.stack.health_timeout), reporter=R)
    R.info()
    R.ok(f"stack is up in {res.seconds:.0f}s — Foundry Local at {res.foundry.root_url} "
         f"({res.foundry.source}), models: {', '.join(res.foundry.chat_models) or 'none loaded'}")
    width = max((len(BY_SERVICE[name].title) for name in res.urls), default=0)
    for name, url in res.urls.items():
        R.info(f"  {BY_SERVICE[name].title:<{width}}  {url}")
    R.info(f"  Sign in as {res.stack.env['WEBUI_ADMIN_EMAIL']}; the password is "
           f"WEBUI_ADMIN_PASSWORD in {res.stack.env_file} (mode 0600).")
    R.info(f"  Next: `{cmd('smoke')}` to check the whole path, `{cmd('status')}`, `{cmd('logs -f')}`.")


@task(help={"volumes": "Also delete all data (chats, metrics, dashboards state).",
            "yes": "Do not ask before deleting data.",
            "keep-foundry": "Leave the stack's embedded Foundry Local server running."})
@edge
@locked("down")
def down(c, volumes=False, yes=False, keep_foundry=False):
    """Stop the stack; data volumes are kept unless --volumes."""
    from stackctl.lifecycle.ops import down as do_down

    if volumes and not yes:
        if not sys.stdin.isatty():
            raise StackError("--volumes deletes all chats and metrics; pass --yes to confirm", exit_code=2)
        if input("Delete ALL stack data (chats, users, metrics)? Type 'delete' to confirm: ") != "delete":
            raise StackError("nothing deleted", exit_code=1)
    res = do_down(volumes=volumes, keep_foundry=keep_foundry)
    R.ok(f"stack {res.stack.project} stopped" + ("; data volumes deleted" if volumes else "; data kept"))
    if res.foundry_stopped:
        R.ok(f"embedded Foundry Local stopped (pid {res.foundry_stopped})")
    elif res.foundry_stale:
        R.warn(f"removed a stale embedded-server state file ({res.foundry_stale}); nothing was signalled")


@task
@edge
def status(c):
    """Services, health, URLs, the Foundry endpoint and its loaded models, the alerts firing."""
    from stackctl.fleet.upstreams import status_lines
    from stackctl.lifecycle.ops import alert_section, status_table
    from stackctl.lifecycle.ops import status as do_status

    rep = do_status()
    R.console.print(status_table(rep))
    for line in status_lines(rep.stack):  # with a fleet file: each host, its models
        R.info(line)
    for line in alert_section(rep):
        R.info(line)
    if not rep.healthy:
        raise Exit(code=1)


@task(
      help={"service": f"One of {', '.join(SERVICE_NAMES)} (default: all).",
            "follow": "Keep streaming new lines.", "tail": f"Lines of history to show (default {TASK_DEFAULTS['logs_tail']})."})
@edge
def logs(c, service=None, follow=False, tail=None):
    """Show the stack's logs (`--service NAME` for one service)."""
    from stackctl.lifecycle.ops import logs as do_logs

    if service and service not in SERVICE_NAMES:
        raise UsageError(f"no service {service!r} — choose one of {', '.join(SERVICE_NAMES)}")
    raise Exit(code=do_logs(service, follow=follow, tail=int(tail or c.config.stack.logs_tail)))


@task(help={"json": "Print machine-readable results."})
@edge
def doctor(c, json=False):
    """Run the troubleshooting checks; each finding comes with its fix."""
    from stackctl.checks import doctor as doc
    from stackctl.checks.runner import check_lines

    report = doc.run_doctor()
    if json:
        print(jsonlib.dumps(report.as_dict(), indent=2))
    else:
        for line in check_lines(report, doc.total(report), color=True):
            R.console.print(line)
    raise Exit(code=doc.exit_code(report))


@task(help={"json": "Print the report as JSON.",
            "browser": "Also chat through a real browser (Playwright + chromium) and save a screenshot.",
            "screenshot": "Where --browser saves its screenshot (default: artifacts/smoke-browser.png)."})
@edge
def smoke(c, json=False, browser=False, screenshot=None):
    """Check the whole path end to end: Foundry, Open WebUI, chat, exporter, Prometheus, Grafana."""
    from stackctl.checks.smoke import Options, render, run_smoke
    from stackctl.config.stack import load_stack

    if browser:
        from stackctl.checks.browser import ensure_playwright

        ensure_playwright(R)
    report = run_smoke(load_stack(), Options(browser=browser, screenshot=Path(screenshot) if screenshot else None))
    if json:
        print(jsonlib.dumps(report.as_dict(), indent=2))
    else:
        for line in render(report, color=True):
            R.console.print(line)
    raise Exit(code=report.exit_code)


@task
@edge
@locked("reset-admin")
def reset_admin(c):
    """Set Open WebUI's admin password (in its data volume) to WEBUI_ADMIN_PASSWORD from .env."""
    from stackctl.lifecycle.reset_admin import reset_admin as do_reset

    res = do_reset(reporter=R)
    moved = f" (its e-mail was {res.old_email})" if res.old_email != res.email else ""
    R.ok(f"Open WebUI admin {res.email}{moved} now signs in with WEBUI_ADMIN_PASSWORD from "
         f"{res.stack.env_file}; chats and users kept")
    R.info(f"  Next: `{cmd('up')}`" + (" (Open WebUI was stopped for this)" if res.stopped_openwebui else ""))


@task(help={"test": "Send a synthetic alert through Alertmanager to the configured receivers "
                    "and report whether it was delivered (then resolve it)."})
@edge
def alerts(c, test=False):
    """Active alerts (name, target, age, state, runbook); --test proves delivery."""
    from stackctl.alerting import client
    from stackctl.config.stack import load_stack

    stack = load_stack()
    if test:
        report = client.run_test(stack)
        for line in report.lines():
            R.info(line)
        raise Exit(code=0 if report.ok else 1)
    for line in client.alert_lines(client.active(stack)):
        R.info(line)


ns = Collection(up, down, status, logs, doctor, smoke, alerts, reset_admin)
