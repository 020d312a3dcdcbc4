"""invoke entry points — wiring only: parse options, call stackctl, print, exit code.

Every command's logic is a function in stackctl/ that returns data; this file
turns that data into lines on the terminal and a process exit code
(0 ok, 1 failed check/operation, 2 bad input or missing prerequisite).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

from invoke import Collection, Exit, task

from stackctl.errors import StackError
from stackctl.report import Reporter

R = Reporter()


def _edge(fn):
    """Turn StackError into a one-line message and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StackError as err:
            R.fail(str(err))
            raise Exit(code=err.exit_code) from None

    return wrapper


@task(help={
    "model": "Catalog model alias for the embedded Foundry server, if one must be started.",
    "model-path": "Local ONNX Runtime GenAI model folder to serve instead (works offline).",
    "timeout": "Seconds to wait for the services to become healthy.",
})
@_edge
def up(c, model=None, model_path=None, timeout=300):
    """Start the stack (creates .env, finds or serves Foundry Local, waits for health)."""
    from stackctl.up import up as do_up

    res = do_up(model=model, model_path=model_path, timeout=float(timeout), reporter=R)
    R.info()
    R.ok(f"stack is up in {res.seconds:.0f}s — Foundry Local at {res.foundry.root_url} "
         f"({res.foundry.source}), models: {', '.join(res.foundry.chat_models) or 'none loaded'}")
    for name, url in res.urls.items():
        R.info(f"  {name:<11} {url}")
    R.info(f"  Sign in as {res.stack.env['WEBUI_ADMIN_EMAIL']}; the password is "
           f"WEBUI_ADMIN_PASSWORD in {res.stack.env_file} (mode 0600).")
    R.info("  Next: `invoke smoke` to check the whole path, `invoke status`, `invoke logs -f`.")


@task(help={"volumes": "Also delete all data (chats, metrics, dashboards state).",
            "yes": "Do not ask before deleting data."})
@_edge
def down(c, volumes=False, yes=False):
    """Stop the stack; data volumes are kept unless --volumes."""
    from stackctl.ops import down as do_down

    if volumes and not yes:
        if not sys.stdin.isatty():
            raise StackError("--volumes deletes all chats and metrics; pass --yes to confirm", exit_code=2)
        if input("Delete ALL stack data (chats, users, metrics)? Type 'delete' to confirm: ") != "delete":
            raise StackError("nothing deleted", exit_code=1)
    stack = do_down(volumes=volumes)
    R.ok(f"stack {stack.project} stopped" + ("; data volumes deleted" if volumes else "; data kept"))


@task
@_edge
def status(c):
    """Services, health, URLs, the Foundry endpoint and its loaded models."""
    from stackctl.ops import status as do_status
    from stackctl.views import status_table

    rep = do_status()
    R.console.print(status_table(rep))
    if not rep.healthy:
        raise Exit(code=1)


@task(help={"service": "One of open-webui, exporter, prometheus, grafana.",
            "follow": "Keep streaming new lines.", "tail": "Lines of history to show."})
@_edge
def logs(c, service=None, follow=False, tail=200):
    """Show the stack's logs."""
    from stackctl.ops import logs as do_logs

    raise Exit(code=do_logs(service, follow=follow, tail=int(tail)))


@task(help={"json": "Print machine-readable findings."})
@_edge
def doctor(c, json=False):
    """Run the troubleshooting checks; each finding comes with its fix."""
    from stackctl.doctor import run_doctor
    from stackctl.views import doctor_lines

    findings = run_doctor()
    if json:
        import json as _json

        print(_json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        for line in doctor_lines(findings):
            R.console.print(line)
    raise Exit(code=max((f.exit_code for f in findings), default=0))


@task(help={"tier": "unit, integration or e2e (default: all three)",
            "k": "Only tests matching this expression (pytest -k)."})
def test(c, tier=None, k=None):
    """Lint, then every test tier (unit, integration, e2e) in one pytest run."""
    lint(c)
    args = [sys.executable, "-m", "pytest"]
    if tier:
        args += ["-m", tier]
    if k:
        args += ["-k", k]
    raise Exit(code=subprocess.call(args))


@task
def lint(c):
    """ruff over the whole tree."""
    code = subprocess.call([sys.executable, "-m", "ruff", "check", "."])
    if code:
        raise Exit("lint failed — run `ruff check --fix .` for the fixable ones", code=code)


ns = Collection(up, down, status, logs, doctor, test, lint)

from stackctl.foundry.tasks import ns as foundry_ns  # noqa: E402 - after the local tasks

ns.add_collection(foundry_ns, name="foundry")

ns.configure({"run": {"pty": os.isatty(1)}})
