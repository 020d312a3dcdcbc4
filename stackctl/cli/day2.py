"""`backup restore upgrade bench bundle`: day-2 operations on the stack's data and models."""

from __future__ import annotations

import sys

from invoke import Collection, Exit, task

from stackctl.cli import R, edge
from stackctl.config.settings import TASK_DEFAULTS
from stackctl.console import cmd
from stackctl.errors import StackError
from stackctl.lock import locked


@task(help={"include-metrics": "Also back up the metrics side: Prometheus', Alertmanager's (and Grafana's) volumes.",
            "out": "Folder for the archive (default: backups/ in the project).",
            "timeout": f"Seconds to wait for services to be healthy again (default {TASK_DEFAULTS['health_timeout']}).",
            "no-secrets": "Leave the .env credentials (admin password, session key) out of the archive; "
                          "a restore on another clone then needs the old .env values."})
@edge
@locked("backup")
def backup(c, include_metrics=False, out=None, timeout=None, no_secrets=False):
    """Back up Open WebUI's data (chats, users, settings) into a timestamped .tar.gz (mode 0600)."""
    from pathlib import Path

    from stackctl.day2.backup import backup as do_backup

    res = do_backup(include_metrics=include_metrics, secrets=not no_secrets, out_dir=Path(out) if out else None,
                    timeout=float(timeout or c.config.stack.health_timeout), reporter=R)
    m = res.manifest
    R.ok(f"backup written: {res.path} ({len(m.files)} files, {m.total_bytes:,} bytes, "
         f"Open WebUI {m.openwebui_version}, volumes: {', '.join(m.volumes)}) in {res.seconds:.0f}s")
    R.info("  It holds the .env credentials (keep it private)." if m.secrets else
           "  Without credentials (--no-secrets): restoring it elsewhere needs this .env's values.")
    R.info(f"  Restore it with `{cmd(f'restore {res.path}')}`.")


@task(help={"yes": "Do not ask before replacing the current data.",
            "max-size": "Refuse archives that expand past this size (e.g. 20G; default: 4× the live data, "
                        "at least 8G).",
            "max-files": "Refuse archives with more entries than this (default 100000)."})
@edge
@locked("restore")
def restore(c, file, yes=False, max_size=None, max_files=None):
    """Restore a backup (verified first; the current data is kept if anything fails).

    The backup's .env credentials (if it carries them) are written into .env, so the
    restored admin password works on a fresh clone too."""
    from pathlib import Path

    from stackctl.day2.archive import LIMITS_OVERRIDE, parse_size
    from stackctl.day2.backup import absent_volumes, credentials_restored
    from stackctl.day2.restore import restore as do_restore
    from stackctl.docker import engine
    from stackctl.errors import UsageError
    from stackctl.lifecycle.up import up as do_up

    over = {}
    try:
        if max_size is not None:
            over["max_bytes"] = parse_size(str(max_size))
        if max_files is not None:
            over["max_files"] = int(str(max_files))
        if min(over.values(), default=1) < 1:
            raise ValueError("a limit must be positive")
    except ValueError as exc:
        raise UsageError(f"--max-size/--max-files: {exc} — e.g. `--max-size 20G --max-files 200000`") from None
    chosen = []

    def bring_up(stack):
        with credentials_restored(stack, chosen[0], absent_volumes(stack, engine.client()), R):
            do_up(reporter=R)

    def confirm(m) -> bool:
        chosen.append(m)
        if yes:
            return True
        if not sys.stdin.isatty():
            raise StackError("restore replaces the current chats and users; pass --yes to confirm", exit_code=2)
        return input(f"Replace the current data with the backup of {m.created_at} "
                     f"({', '.join(m.volumes)})? Type 'restore' to confirm: ") == "restore"

    token = LIMITS_OVERRIDE.set(over)
    try:
        res = do_restore(Path(file), confirm=confirm, bring_up=bring_up, reporter=R)
    finally:
        LIMITS_OVERRIDE.reset(token)
    R.ok(f"restored {res.path.name} (taken {res.manifest.created_at}; webui.db integrity ok, "
         f"{res.staged.chats} chats) in {res.seconds:.0f}s")


@task(help={"to": "Image tag (same repository) or full image reference; default: the tag this stack pins.",
            "out": "Folder for the safety backup (default: backups/ in the project).",
            "timeout": f"Seconds to wait for health at each step (default {TASK_DEFAULTS['health_timeout']})."})
@edge
@locked("upgrade")
def upgrade(c, to=None, out=None, timeout=None):
    """Back up, move OPENWEBUI_IMAGE, bring the stack up, run smoke; roll back on failure."""
    from pathlib import Path

    from stackctl.day2.upgrade import upgrade as do_upgrade

    res = do_upgrade(to=to, out_dir=Path(out) if out else None,
                     timeout=float(timeout or c.config.stack.health_timeout), reporter=R)
    if not res.changed:
        R.ok(f"Open WebUI is already on {res.new} ({res.new_version}); nothing to do")
        return
    R.ok(f"upgraded Open WebUI {res.old_version} → {res.new_version} ({res.new}); smoke passed; "
         f"backup of the old data: {res.backup}")


@task(help={"models": "Comma-separated model ids (default: the chat models Foundry Local has loaded).",
            "models-file": "YAML file listing model ids (instead of --models).",
            "prompts-file": "Prompt set YAML (default: stackctl/bench/prompts.yaml).",
            "rounds": f"Measured rounds per prompt, after one warm-up round (default {TASK_DEFAULTS['bench_rounds']}).",
            "through-openwebui": "Also measure through Open WebUI's API (proxy overhead).",
            "out": "Output folder (default: bench-results/<timestamp>).",
            "base-url": "OpenAI base URL to measure instead of the discovered Foundry Local."})
@edge
def bench(c, models=None, models_file=None, prompts_file=None, rounds=None, through_openwebui=False,
          out=None, base_url=None):
    """Benchmark Foundry Local models: latency, TTFT, tokens/s; JSON, CSV, Markdown and a PNG chart."""
    from pathlib import Path

    from stackctl.bench.run import BenchOptions, run_bench

    res = run_bench(BenchOptions(
        models=models, models_file=Path(models_file) if models_file else None,
        prompts_file=Path(prompts_file) if prompts_file else None,
        rounds=int(rounds or c.config.stack.bench_rounds),
        through_openwebui=through_openwebui, out_dir=Path(out) if out else None,
        base_url=base_url), reporter=R)
    for line in res.summary_lines:
        R.info(line)
    for kind, path in res.outputs.items():
        R.info(f"  {kind:<8} {path}")
    if res.all_failed:
        raise Exit(code=1)


@task(help={"action": "save (write FILE) or load (verify FILE, then load it).",
            "file": "The bundle file (relative to where you typed the command).",
            "model-path": "save: also carry this local model folder (ONNX Runtime GenAI) in the bundle.",
            "model-dir": "load: a new folder for the bundle's model folder (default: <project>/models/<its name>).",
            "force": "save: replace FILE if it exists."})
@edge
def bundle(c, action, file, model_path=None, model_dir=None, force=False):
    """Offline bundle: `bundle save FILE` writes every image the stack runs (and a model folder)
    into one file; `bundle load FILE` verifies it whole, loads it, and names the next command.

    For a machine without a registry or the model catalog: save on a connected machine,
    copy the file, load it there, then run the `up` line it prints."""
    import shlex
    import time

    from stackctl.config.stack import settled_stack, state_dir_of
    from stackctl.day2 import bundle as b
    from stackctl.day2.archive import human
    from stackctl.docker import engine
    from stackctl.errors import UsageError
    from stackctl.foundry.model_spec import resolve
    from stackctl.lock import stack_lock

    if action not in ("save", "load"):
        raise UsageError(f"bundle {action!r}: say `{cmd('bundle save FILE')}` or `{cmd('bundle load FILE')}`")
    wrong = [o for o, v in (("--model-dir", model_dir), ) if v and action == "save"] + \
        [o for o, v in (("--model-path", model_path), ("--force", force)) if v and action == "load"]
    if wrong:
        raise UsageError(f"{', '.join(wrong)} is not an option of `bundle {action}` — see `{cmd('--help bundle')}`")
    path = b.user_path(file)
    step, t0 = {}, time.monotonic()

    def progress(what: str, done: int, total: int) -> None:  # a line per 10 %, like pulls
        pct = min(100, int(100 * done / total)) if total else 100
        if pct < 100 and done >= total > 0:
            pct = 99
        if pct // 10 > step.get(what, -1):
            step[what] = pct // 10
            of = f" of {total / 2**20:,.0f} MiB ({pct}%)" if total else ""
            R.info(f"  {what}: {done / 2**20:,.0f} MiB{of}, {time.monotonic() - t0:.0f}s")

    if action == "save":
        b.check_target(path, force)
        folder = b.user_path(model_path) if model_path else None
        if folder is not None:
            resolve(None, str(folder))  # the folder `up --model-path` would take, or its one-line why not
        stack = settled_stack()
        R.step(f"writing {path} from the images {stack.env_file.name} names")
        res = b.save(path, stack, b.DockerImages(engine.client()), model_path=folder, force=force,
                     progress=progress, say=lambda msg: R.info(f"  {msg}"))
        m = res.manifest
        R.ok(f"bundle written: {res.path} ({human(res.bytes)}, {len(m.images)} images"
             f"{f', model folder {m.model_name}' if m.model_name else ''}) in {res.seconds:.0f}s")
        for note in m.skipped:
            R.warn(f"  left out: {note}")
        here = stack.env.get("FOUNDRY_MODEL_PATH")
        if not m.model_name and here:
            again = f"bundle save {shlex.quote(str(path))} --force --model-path {shlex.quote(here)}"
            R.info(f"  No model folder in it (.env serves {here}): add it with `{cmd(again)}`.")
        there = f"bundle load {shlex.quote(path.name)}"
        R.info(f"  On the offline machine (the file copied into the project folder): `{cmd(there)}`.")
        return
    target = b.user_path(model_dir) if model_dir else None
    if target is not None:
        b.check_model_dir(target)  # before reading GBs
    client = engine.client()
    with stack_lock(state_dir_of(), cmd("bundle load"), on_note=R.warn):
        R.step(f"verifying {path} (every member against its checksum) before loading anything")
        with b.open_bundle(path, progress) as verified:
            m = verified.manifest
            R.ok(f"{path.name} verified: {len(m.images)} images, {human(m.total_bytes)} "
                 f"(written {m.created_at} by stack {m.stack_version})")
            stack = settled_stack()
            res = b.load(verified, b.DockerImages(client), model_dir=target, env_file=stack.env_file,
                         env=stack.env, models_home=stack.root / b.MODELS_HOME, progress=progress,
                         say=lambda msg: R.info(f"  {msg}"))
    for what in res.loaded:
        R.ok(f"loaded {what}")
    for what in res.present:
        R.ok(f"already present (same id): {what}")
    if res.model_dir:
        R.ok(f"model folder {m.model_name} written to {res.model_dir}")
    if res.env_updates:
        R.ok(f"{stack.env_file.name} now names the bundle's images: "
             + ", ".join(f"{k}={v}" for k, v in res.env_updates.items()))
    nxt = "up" + (f" --model-path {shlex.quote(b.shown_path(res.model_dir, stack.root))}" if res.model_dir else "")
    R.info(f"Next: `{cmd(nxt)}`")


ns = Collection(backup, restore, upgrade, bench, bundle)
