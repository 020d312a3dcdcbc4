"""`invoke backup`: a consistent, verifiable copy of the stack's data volumes.

Consistency — cold copy, not SQLite's online backup API: the Open WebUI volume
holds more than webui.db (its -wal/-shm, the vector store's own SQLite database,
uploaded files that rows point at). The backup API would make webui.db alone
consistent and leave the rest torn against it; stopping Open WebUI for the copy
makes the whole volume one point in time (the architecture's "back up cold").
The cost is a short outage: stop, copy, start, wait until healthy again (about
as long as an Open WebUI start). With --include-metrics every other volume of
settings.VOLUMES is copied too, its service stopped the same way: Prometheus (a
live TSDB copy is torn too), Grafana, and Alertmanager (silences and the
notification log; no notifications go out for those seconds). Services that were
not running are not started.

The volumes are read through a created-but-never-started container of the
Open WebUI image (``get_archive``: ownership and modes are kept) and streamed
into the archive, hashing every file on the way (see day2_archive for layout and
atomicity). Archives are mode 0600: they hold the users table — and, unless
``--no-secrets``, the .env credentials that sign in to that data (admin email and
password, session key, Grafana's admin): without them a restore on a fresh clone
has a users table whose admin password nothing knows. ``restore`` writes them
back into .env (0600, other keys untouched) for the volumes it restores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stackctl import __version__
from stackctl.config import envfile
from stackctl.config.settings import (
    BY_KEY,
    GRAFANA,
    IMAGE_KEYS,
    OPENWEBUI,
    SECRET_KEYS,
    VOLUME_SERVICE,
    VOLUMES,
)
from stackctl.config.stack import Stack, load_stack
from stackctl.console import Reporter, cmd
from stackctl.day2.archive import ArchiveWriter, Limits, Manifest, archive_name, restore_limits
from stackctl.day2.version import PROBE, ImageVersion, parse_probe
from stackctl.docker import compose as composer
from stackctl.docker import engine, health
from stackctl.docker import volumes as dd
from stackctl.errors import StackError, UsageError


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    stopped: tuple[str, ...]
    seconds: float


def default_dir(stack: Stack) -> Path:
    return stack.root / "backups"


def probe_image(client, image: str, project: str) -> ImageVersion:
    """The Open WebUI version and migration revisions inside ``image`` (see day2_version)."""
    code, out = dd.run_script(client, image, project, "probe", ["python3", "-c", PROBE], {})
    iv = parse_probe(image, out)
    if code != 0 or not iv.version:
        raise StackError(f"cannot tell which Open WebUI version image {image} holds "
                         f"(probe exit {code}: {out.strip()[-160:] or 'no output'}) — is it an "
                         "Open WebUI image? check OPENWEBUI_IMAGE in .env", exit_code=2)
    return iv


def backup(*, include_metrics: bool = False, secrets: bool = True, out_dir: Path | None = None,
           timeout: float = 300.0, reporter: Reporter | None = None, stack: Stack | None = None,
           client=None, compose=None, now: Callable[[], datetime] = lambda: datetime.now(UTC),
           ) -> BackupResult:
    r = reporter or Reporter.quiet()
    t0 = time.monotonic()
    stack = stack or load_stack()
    client = client or engine.client()
    compose = compose or composer.find()
    wanted = [OPENWEBUI.volume] + ([v for v in VOLUMES if v != OPENWEBUI.volume] if include_metrics else [])
    volumes = [v for v in wanted if dd.volume_exists(client, dd.volume_name(stack.project, v))]
    if OPENWEBUI.volume not in volumes:
        raise StackError(f"no Open WebUI data volume {dd.volume_name(stack.project, OPENWEBUI.volume)} "
                         f"— nothing to back up; `{cmd('up')}` creates it", exit_code=2)
    for v in sorted(set(wanted) - set(volumes)):
        r.warn(f"volume {v} does not exist; not in the backup")

    states = engine.services(client, stack.project)
    # The image that wrote the data: the container's, if one exists, else the pinned one.
    pinned = stack.env[OPENWEBUI.image_key]
    writer = states[OPENWEBUI.name].image if OPENWEBUI.name in states else pinned
    if not engine.image_present(client, writer):
        writer = pinned
    iv = probe_image(client, writer, stack.project)

    when = now()
    out = (out_dir or default_dir(stack)).resolve() / archive_name(
        stack.project, when.strftime("%Y%m%dT%H%M%SZ"))
    running = tuple(VOLUME_SERVICE[v] for v in volumes
                    if states.get(VOLUME_SERVICE[v]) and states[VOLUME_SERVICE[v]].state == "running")
    written: list[Path] = []

    def outcome() -> str:
        return f"; the backup itself is complete: {written[0]}" if written else "; no backup was written"

    with cold(stack, client, compose, running, r, timeout, outcome), ArchiveWriter(out) as w:
        for v in volumes:
            r.step(f"copying volume {v}")
            with dd.export_volume(client, writer, stack.project, dd.volume_name(stack.project, v)) as tar:
                w.add_volume(v, tar)
        manifest = Manifest(
            created_at=when.isoformat(timespec="seconds").replace("+00:00", "Z"),
            stack_version=__version__, project=stack.project,
            images={k: stack.env[k] for k in IMAGE_KEYS if stack.env.get(k)},
            openwebui_version=iv.version or "", openwebui_image=writer, volumes=tuple(volumes), files=dict(w.files),
            skipped=tuple(w.skipped), excluded=tuple(w.excluded),
            secrets=credentials(stack.env) if secrets else {},
        )
        path = w.commit(manifest)
        written.append(path)
    for s in manifest.skipped:
        r.warn(f"not backed up (not a regular file or directory): {s}")
    return BackupResult(path, manifest, running, time.monotonic() - t0)


@contextmanager
def cold(stack: Stack, client, compose, services: tuple[str, ...], r: Reporter,
         timeout: float, outcome: Callable[[], str] = lambda: "") -> Iterator[None]:
    """Stop ``services`` for the block, then start them again and wait until healthy.

    ``outcome()`` is added to the "did not come back" error (whether the copy is usable).
    """
    if not services:
        yield
        return
    r.step(f"stopping {', '.join(services)} for a consistent copy")
    composer.run(compose, stack, "stop", *services, capture=True)
    try:
        yield
    finally:
        r.step(f"starting {', '.join(services)} again")
        try:
            composer.run(compose, stack, "start", *services, capture=True)
            with r.status(f"waiting for {', '.join(services)} to be healthy"):
                health.wait_healthy(services, lambda: engine.services(client, stack.project),
                                    timeout=timeout)
        except StackError as err:
            raise StackError(f"{', '.join(services)} did not come back after the copy ({err}){outcome()} — "
                             f"run `{cmd('up')}`, then `{cmd('status')}`") from None


# -- credentials: what a restore needs to sign in to the data it brings back ------------

# The secrets, plus the names they belong to (a changed admin email is in the users table too).
CREDENTIAL_KEYS: tuple[str, ...] = tuple(sorted(SECRET_KEYS | {"WEBUI_ADMIN_EMAIL", "GRAFANA_ADMIN_USER"}))
# Whose data a credential opens: written back only when that volume is restored (or absent).
_SECTION_VOLUME = {BY_KEY["WEBUI_ADMIN_PASSWORD"].section: OPENWEBUI.volume,
                   BY_KEY["GRAFANA_ADMIN_PASSWORD"].section: GRAFANA.volume}


def credentials(env: dict[str, str]) -> dict[str, str]:
    """The .env credentials a backup carries. Pure."""
    return {k: env[k] for k in CREDENTIAL_KEYS if env.get(k)}


def credentials_to_write(manifest: Manifest, env: dict[str, str], absent: set[str]) -> dict[str, str]:
    """The archive's credentials that differ from ``env`` and open a volume the restore
    replaces, or one that does not exist yet (``absent``: a fresh clone's Grafana). Pure."""
    out = {}
    for key, value in manifest.secrets.items():
        setting = BY_KEY.get(key)
        volume = _SECTION_VOLUME.get(setting.section) if setting else None
        if volume and (volume in manifest.volumes or volume in absent) and env.get(key) != value:
            out[key] = value
    return out


def write_credentials(env_file: Path, values: dict[str, str]) -> None:
    """Set ``values`` in .env (0600, atomic): existing lines rewritten in place, other keys
    and comments kept; UsageError (nothing written) if a value is not a valid .env value."""
    lines = envfile.parse(env_file.read_text() if env_file.exists() else "", str(env_file))
    rest = dict(values)
    out = [envfile.EnvLine(f"{ln.key}={rest.pop(ln.key)}", ln.key, values[ln.key]) if ln.key in rest else ln
           for ln in lines]
    out += [envfile.EnvLine(f"{k}={v}", k, v) for k, v in rest.items()]
    try:
        text = envfile.render(out)
        back = envfile.values(envfile.parse(text, str(env_file)))
    except UsageError:  # e.g. a '$' compose would interpolate
        text, back = "", {}
    wrong = sorted(k for k, v in values.items() if back.get(k) != v)
    if wrong:
        raise UsageError(f"the backup's {', '.join(wrong)} cannot be written to {env_file.name} as they are "
                         "— restore with the current credentials kept: set them by hand afterwards")
    envfile.write_atomic(env_file, text)


@contextmanager
def credentials_restored(stack: Stack, manifest: Manifest, absent: set[str],
                         r: Reporter) -> Iterator[tuple[str, ...]]:
    """Write the archive's credentials into .env for the block; the previous .env is
    put back if the block fails (the data is rolled back then too)."""
    values = credentials_to_write(manifest, stack.env, absent)
    if not values:
        yield ()
        return
    before = stack.env_file.read_text()
    write_credentials(stack.env_file, values)
    r.ok(f"credentials from the backup written to {stack.env_file.name}: {', '.join(sorted(values))}")
    try:
        yield tuple(sorted(values))
    except BaseException:
        envfile.write_atomic(stack.env_file, before)
        r.warn(f"{stack.env_file.name} put back as it was (its credentials match the previous data)")
        raise


def absent_volumes(stack: Stack, client) -> set[str]:
    """The stack's volumes that do not exist (yet)."""
    return {v for v in VOLUMES if not dd.volume_exists(client, dd.volume_name(stack.project, v))}


def live_limits(stack: Stack, client=None) -> Limits:
    """Restore limits derived from the live data a restore would replace (see archive.Limits)."""
    client = client or engine.client()
    names = {dd.volume_name(stack.project, v) for v in VOLUMES}
    live = sum(max(0, (v.get("UsageData") or {}).get("Size") or 0)
               for v in client.df().get("Volumes") or () if v.get("Name") in names)
    return restore_limits(live)
