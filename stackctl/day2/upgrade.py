"""`invoke upgrade [--to TAG]`: move Open WebUI to another image, or end where it started.

Steps: resolve the target image (``--to`` a tag of the same repository or a full
reference; without it, the tag this version of the stack pins in settings.py);
make sure it is present (pulled only when missing locally); refuse a downgrade
(migrations are one-way — going back is `invoke restore`); back up (cold);
rewrite OPENWEBUI_IMAGE in .env — the one user-owned value this command may change,
because the user asked for it — atomically; start the new Open WebUI and watch it
(a container that restarts is failed, not "starting"); bring the whole stack up;
run smoke. If any of that fails — any exception, Ctrl-C included — put the old tag
back in .env, restore the backup (which brings the stack up on the old image), and
fail saying so (exit 130 when interrupted).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stackctl.config import envfile
from stackctl.config.settings import BY_KEY, OPENWEBUI
from stackctl.config.stack import Stack, load_stack
from stackctl.console import Reporter, cmd
from stackctl.day2.backup import BackupResult, probe_image
from stackctl.day2.restore import INTERRUPTED, detail
from stackctl.day2.version import is_newer
from stackctl.docker import compose as composer
from stackctl.docker import engine, health
from stackctl.docker.engine import image_present
from stackctl.docker.images import try_pull
from stackctl.errors import StackError

KEY = OPENWEBUI.image_key


@dataclass(frozen=True)
class UpgradeResult:
    old: str
    new: str
    old_version: str
    new_version: str
    backup: Path | None
    changed: bool
    seconds: float


def resolve_target(current: str, to: str | None, pinned: str) -> str:
    """The image reference to move to. Pure.

    ``None`` → the stack's pinned default; a bare tag ('v0.12.5') → that tag of the
    current repository; anything with '/', ':' or '@' → taken as a full reference.
    """
    if not to:
        return pinned
    to = to.strip()
    if any(ch in to for ch in "/:@"):
        return to
    repo = current.split("@", 1)[0]
    last = repo.rsplit("/", 1)
    if ":" in last[-1]:
        repo = repo[: repo.rfind(":")]
    return f"{repo}:{to}"


def set_image(env_file: Path, ref: str) -> None:
    """Rewrite OPENWEBUI_IMAGE in .env atomically, every other line kept byte for byte."""
    lines = envfile.parse(env_file.read_text(), str(env_file))
    out, found = [], False
    for ln in lines:
        if ln.key == KEY:
            ln, found = envfile.EnvLine(f"{KEY}={ref}", KEY, ref), True
        out.append(ln)
    if not found:
        out.append(envfile.EnvLine(f"{KEY}={ref}", KEY, ref))
    envfile.write_atomic(env_file, envfile.render(out))


def smoke_gate(stack: Stack) -> None:
    """`invoke smoke` as a pass/fail step (StackError naming the first broken link)."""
    from stackctl.checks.smoke import run_smoke

    report = run_smoke(stack)
    first = report.first_failure
    if first is not None:
        raise StackError(f"smoke failed at {first.name}: {first.detail}")


def no_crashloop(fetch: Callable[[], dict[str, engine.ServiceState]]):
    """Wrap a state fetch so a container that has restarted counts as exited (fatal)."""
    def wrapped() -> dict[str, engine.ServiceState]:
        return {k: dataclasses.replace(s, state="exited") if s.restarts > 0 else s
                for k, s in fetch().items()}
    return wrapped


def upgrade(*, to: str | None = None, out_dir: Path | None = None, timeout: float = 300.0,
            reporter: Reporter | None = None,
            backup: Callable[..., BackupResult] | None = None,
            restore: Callable[[Path], object] | None = None,
            bring_up: Callable[[], object] | None = None,
            smoke: Callable[[Stack], None] = smoke_gate,
            stack: Stack | None = None, client=None, compose=None) -> UpgradeResult:
    r = reporter or Reporter.quiet()
    t0 = time.monotonic()
    stack = stack or load_stack()
    client = client or engine.client()
    compose = compose or composer.find()
    old = stack.env[KEY]
    new = resolve_target(old, to, BY_KEY[KEY].default)
    if not image_present(client, new):
        r.step(f"pulling {new}")
        why = try_pull(client, new, r)  # the one pull, with the same progress lines as `up`
        if why is not None:
            raise StackError(f"image {new} is not present locally and pulling it failed ({why}) — check "
                             f"the tag, or load the image (`docker load`) / point {KEY} at a mirror, "
                             "then retry", exit_code=2)
    old_v = probe_image(client, old, stack.project).version or "?"
    new_v = probe_image(client, new, stack.project).version or "?"
    if new == old:
        return UpgradeResult(old, new, old_v, new_v, None, False, time.monotonic() - t0)
    if is_newer(old_v, new_v):
        raise StackError(f"{new} holds Open WebUI {new_v}, older than {old_v} in {old}: the database "
                         f"cannot be migrated back — to go back, `{cmd('restore')}` a backup taken on "
                         f"{new_v}", exit_code=2)

    if backup is None:
        from stackctl.day2.backup import backup
    r.step(f"backing up before upgrading Open WebUI {old_v} → {new_v}")
    b = backup(out_dir=out_dir, reporter=r, stack=stack, client=client, compose=compose, timeout=timeout)
    r.ok(f"backup written: {b.path}")

    set_image(stack.env_file, new)
    r.ok(f"{KEY} in {stack.env_file.name}: {old} → {new}")
    new_stack = stack.with_env(envfile.load(stack.env_file))
    try:
        _start_new(new_stack, client, compose, timeout, r)
        (bring_up or _default_up(r))()
        r.step("running smoke")
        smoke(new_stack)
    except BaseException as exc:  # every failure rolls back: httpx, docker, Ctrl-C included
        raise _roll_back(exc, stack, old, new, b.path, restore or _default_restore(r), r) from None
    return UpgradeResult(old, new, old_v, new_v, b.path, True, time.monotonic() - t0)


def _roll_back(exc: BaseException, stack: Stack, old: str, new: str, backup: Path,
               restore: Callable[[Path], object], r: Reporter) -> StackError:
    """Put ``old`` back in .env and restore ``backup``; the error saying how that went."""
    why = detail(exc)
    code = INTERRUPTED if isinstance(exc, KeyboardInterrupt) else 1
    what = f"upgrade to {new} was {why}" if code == INTERRUPTED else f"upgrade to {new} failed: {why}"
    r.warn(f"{what} — rolling back")
    r.step(f"rolling back to {old} and restoring {backup.name}")
    env_back = False
    try:
        set_image(stack.env_file, old)
        env_back = True
        restore(backup)
    except BaseException as exc2:  # the rollback's own failure, Ctrl-C included, is reported, not raised
        where = f".env is back on {old}" if env_back else f".env still names {new} (set {KEY}={old})"
        return StackError(f"{what} — and the rollback failed too ({detail(exc2)}); {where}; "
                          f"run `{cmd(f'restore {backup} --yes')}`", exit_code=code)
    return StackError(f"{what} — rolled back to {old} and restored the backup {backup}; "
                      "your data is as it was before the upgrade", exit_code=code)


def _start_new(stack: Stack, client, compose, timeout: float, r: Reporter) -> None:
    r.step("starting Open WebUI on the new image")
    composer.run(compose, stack, "up", "-d", "--no-build", OPENWEBUI.name, capture=True)
    with r.status("waiting for the new Open WebUI (migrations run now)"):
        health.wait_healthy([OPENWEBUI.name], no_crashloop(lambda: engine.services(client, stack.project)),
                            timeout=timeout)
    r.ok("Open WebUI is healthy on the new image")


def _default_up(r: Reporter) -> Callable[[], object]:
    def run() -> object:
        from stackctl.lifecycle.up import up

        return up(reporter=r)
    return run


def _default_restore(r: Reporter) -> Callable[[Path], object]:
    def run(path: Path) -> object:
        from stackctl.day2.restore import restore
        from stackctl.lifecycle.up import up

        return restore(path, confirm=lambda m: True, bring_up=lambda s: up(reporter=r), reporter=r)
    return run
