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

from stackctl.console import Reporter
from stackctl.errors import StackError

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
    from stackctl.lifecycle.up import up as do_up

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
            "yes": "Do not ask before deleting data.",
            "keep-foundry": "Leave the stack's embedded Foundry Local server running."})
@_edge
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


@task
@_edge
def status(c):
    """Services, health, URLs, the Foundry endpoint and its loaded models."""
    from stackctl.console import status_table
    from stackctl.lifecycle.ops import status as do_status

    rep = do_status()
    R.console.print(status_table(rep))
    if not rep.healthy:
        raise Exit(code=1)


@task(help={"service": "One of open-webui, exporter, prometheus, grafana.",
            "follow": "Keep streaming new lines.", "tail": "Lines of history to show."})
@_edge
def logs(c, service=None, follow=False, tail=200):
    """Show the stack's logs."""
    from stackctl.lifecycle.ops import logs as do_logs

    raise Exit(code=do_logs(service, follow=follow, tail=int(tail)))


@task(help={"json": "Print machine-readable findings."})
@_edge
def doctor(c, json=False):
    """Run the troubleshooting checks; each finding comes with its fix."""
    from stackctl.checks.doctor import run_doctor
    from stackctl.console import doctor_lines

    findings = run_doctor()
    if json:
        import json as _json

        print(_json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        for line in doctor_lines(findings):
            R.console.print(line)
    raise Exit(code=max((f.exit_code for f in findings), default=0))


@task(help={"json": "Print the report as JSON.",
            "browser": "Also chat through a real browser (Playwright + chromium) and save a screenshot.",
            "screenshot": "Where --browser saves its screenshot (default: artifacts/smoke-browser.png)."})
@_edge
def smoke(c, json=False, browser=False, screenshot=None):
    """Check the whole path end to end: Foundry, Open WebUI, chat, exporter, Prometheus, Grafana."""
    from pathlib import Path

    from stackctl.checks.smoke import Options, render, run_smoke
    from stackctl.config.stack import load_stack

    report = run_smoke(load_stack(), Options(browser=browser, screenshot=Path(screenshot) if screenshot else None))
    if json:
        import json as _json

        print(_json.dumps(report.as_dict(), indent=2))
    else:
        for line in render(report, color=True):
            R.console.print(line)
    raise Exit(code=report.exit_code)


@task(help={"include-metrics": "Also back up Prometheus' (and Grafana's) volumes.",
            "out": "Folder for the archive (default: backups/ in the project).",
            "timeout": "Seconds to wait for services to be healthy again."})
@_edge
def backup(c, include_metrics=False, out=None, timeout=300):
    """Back up Open WebUI's data (chats, users, settings) into a timestamped .tar.gz (mode 0600)."""
    from pathlib import Path

    from stackctl.day2.backup import backup as do_backup

    res = do_backup(include_metrics=include_metrics, out_dir=Path(out) if out else None,
                    timeout=float(timeout), reporter=R)
    m = res.manifest
    R.ok(f"backup written: {res.path} ({len(m.files)} files, {m.total_bytes:,} bytes, "
         f"Open WebUI {m.openwebui_version}, volumes: {', '.join(m.volumes)}) in {res.seconds:.0f}s")
    R.info(f"  Restore it with `invoke restore {res.path}`.")


@task(help={"yes": "Do not ask before replacing the current data."})
@_edge
def restore(c, file, yes=False):
    """Restore a backup (verified first; the current data is kept if anything fails)."""
    from pathlib import Path

    from stackctl.day2.restore import restore as do_restore
    from stackctl.lifecycle.up import up as do_up

    def confirm(m) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise StackError("restore replaces the current chats and users; pass --yes to confirm", exit_code=2)
        return input(f"Replace the current data with the backup of {m.created_at} "
                     f"({', '.join(m.volumes)})? Type 'restore' to confirm: ") == "restore"

    res = do_restore(Path(file), confirm=confirm, bring_up=lambda stack: do_up(reporter=R), reporter=R)
    R.ok(f"restored {res.path.name} (taken {res.manifest.created_at}; webui.db integrity ok, "
         f"{res.staged.chats} chats) in {res.seconds:.0f}s")


@task(help={"to": "Image tag (same repository) or full image reference; default: the tag this stack pins.",
            "out": "Folder for the safety backup (default: backups/ in the project).",
            "timeout": "Seconds to wait for health at each step."})
@_edge
def upgrade(c, to=None, out=None, timeout=300):
    """Back up, move OPENWEBUI_IMAGE, bring the stack up, run smoke; roll back on failure."""
    from pathlib import Path

    from stackctl.day2.upgrade import upgrade as do_upgrade

    res = do_upgrade(to=to, out_dir=Path(out) if out else None, timeout=float(timeout), reporter=R)
    if not res.changed:
        R.ok(f"Open WebUI is already on {res.new} ({res.new_version}); nothing to do")
        return
    R.ok(f"upgraded Open WebUI {res.old_version} → {res.new_version} ({res.new}); smoke passed; "
         f"backup of the old data: {res.backup}")


@task(help={"models": "Comma-separated model ids (default: the chat models Foundry Local has loaded).",
            "models-file": "YAML/text file listing model ids (instead of --models).",
            "prompts-file": "Prompt set YAML (default: stackctl/bench/prompts.yaml).",
            "rounds": "Measured rounds per prompt (after one warm-up round).",
            "through-openwebui": "Also measure through Open WebUI's API (proxy overhead).",
            "out": "Output folder (default: bench-results/<timestamp>).",
            "base-url": "OpenAI base URL to measure instead of the discovered Foundry Local."})
@_edge
def bench(c, models=None, models_file=None, prompts_file=None, rounds=3, through_openwebui=False,
          out=None, base_url=None):
    """Benchmark Foundry Local models: latency, TTFT, tokens/s; JSON, CSV, Markdown and a PNG chart."""
    from pathlib import Path

    from stackctl.bench.run import BenchOptions, run_bench

    res = run_bench(BenchOptions(
        models=models, models_file=Path(models_file) if models_file else None,
        prompts_file=Path(prompts_file) if prompts_file else None, rounds=int(rounds),
        through_openwebui=through_openwebui, out_dir=Path(out) if out else None,
        base_url=base_url), reporter=R)
    for line in res.summary_lines:
        R.info(line)
    for kind, path in res.outputs.items():
        R.info(f"  {kind:<8} {path}")
    if res.all_failed:
        raise Exit(code=1)


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
    """ruff over the tree; promtool over the Prometheus config, rules and rule tests."""
    code = subprocess.call([sys.executable, "-m", "ruff", "check", "."])
    if code:
        raise Exit("lint failed — run `ruff check --fix .` for the fixable ones", code=code)
    import glob

    for args in (["check", "config", "prometheus/prometheus.yml"],
                 ["check", "rules", *sorted(glob.glob("prometheus/rules/*.yml"))],
                 ["test", "rules", *sorted(glob.glob("prometheus/tests/*.yml"))]):
        try:
            code = subprocess.call(["promtool", *args], stdout=subprocess.DEVNULL)
        except FileNotFoundError:
            raise Exit("promtool not found — install Prometheus (Debian: apt install prometheus)", code=2) from None
        if code:
            raise Exit(f"promtool {' '.join(args[:2])} failed — run it to see why", code=code)


@task
def dashboards(c):
    """Regenerate grafana/dashboards/*.json from grafana/*.py (a unit test fails on drift)."""
    from grafana.generate import main

    raise Exit(code=main())


ns = Collection(up, down, status, logs, doctor, smoke, backup, restore, upgrade, bench, test, lint, dashboards)

from stackctl.cli.foundry import ns as foundry_ns

ns.add_collection(foundry_ns, name="foundry")

ns.configure({"run": {"pty": os.isatty(1)}})
