"""`invoke backup`: a consistent, verifiable copy of the stack's data volumes.

Consistency — cold copy, not SQLite's online backup API: the Open WebUI volume
holds more than webui.db (its -wal/-shm, the vector store's own SQLite database,
uploaded files that rows point at). The backup API would make webui.db alone
consistent and leave the rest torn against it; stopping Open WebUI for the copy
makes the whole volume one point in time (the architecture's "back up cold").
The cost is a short outage: stop, copy, start, wait until healthy again (about
as long as an Open WebUI start). With --include-metrics Prometheus (and Grafana)
are stopped the same way, since a live TSDB copy is torn too. Services that were
not running are not started.

The volumes are read through a created-but-never-started container of the
Open WebUI image (``get_archive``: ownership and modes are kept) and streamed
into the archive, hashing every file on the way (see day2_archive for layout and
atomicity). Archives are mode 0600: they hold the users table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stackctl import __version__
from stackctl.config.settings import IMAGE_KEYS, OPENWEBUI, VOLUME_SERVICE, VOLUMES
from stackctl.config.stack import Stack, load_stack
from stackctl.console import Reporter, cmd
from stackctl.day2.archive import ArchiveWriter, Manifest, archive_name
from stackctl.day2.version import PROBE, ImageVersion, parse_probe
from stackctl.docker import compose as composer
from stackctl.docker import engine, health
from stackctl.docker import volumes as dd
from stackctl.errors import StackError


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


def backup(*, include_metrics: bool = False, out_dir: Path | None = None,
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
    if not dd.image_present(client, writer):
        writer = pinned
    iv = probe_image(client, writer, stack.project)

    when = now()
    out = (out_dir or default_dir(stack)).resolve() / archive_name(
        stack.project, when.strftime("%Y%m%dT%H%M%SZ"))
    running = tuple(VOLUME_SERVICE[v] for v in volumes
                    if states.get(VOLUME_SERVICE[v]) and states[VOLUME_SERVICE[v]].state == "running")
    with cold(stack, client, compose, running, r, timeout), ArchiveWriter(out) as w:
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
        )
        path = w.commit(manifest)
    for s in manifest.skipped:
        r.warn(f"not backed up (not a regular file or directory): {s}")
    return BackupResult(path, manifest, running, time.monotonic() - t0)


@contextmanager
def cold(stack: Stack, client, compose, services: tuple[str, ...], r: Reporter,
         timeout: float) -> Iterator[None]:
    """Stop ``services`` for the block, then start them again and wait until healthy."""
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
            raise StackError(f"{', '.join(services)} did not come back after the copy ({err}) — "
                             f"run `{cmd('up')}`, then `{cmd('status')}`") from None
