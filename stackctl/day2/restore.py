"""`invoke restore FILE`: put a backup back, or change nothing.

Order, and why each step is where it is:
1. verify the archive on the host (day2_archive.verify: readable to the end,
   manifest, every checksum, no traversal/absolute/link entries) and refuse an
   archive written by a newer Open WebUI than the current image — before any
   Docker object is touched;
2. ask (unless --yes);
3. extract into fresh staging volumes and run SQLite's ``PRAGMA integrity_check``
   on the staged webui.db (and check its alembic revision is one the image
   knows) — the live volumes are still untouched;
4. stop the services that use the volumes, copy the live content into rollback
   volumes, replace the live content with the staged one (in one throwaway
   container, ``cp -a`` keeps owners and modes);
5. bring the stack back (``invoke up``'s code path: health, Foundry reconcile).
If 4 or 5 fails, the rollback copy is put back, so the data is as it was; the
scratch volumes are removed at the end (a rollback volume is kept, and named,
only if putting it back failed too).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stackctl.config.settings import OPENWEBUI, VOLUME_SERVICE
from stackctl.config.stack import Stack, load_stack
from stackctl.console import Reporter
from stackctl.day2.archive import EXCLUDED, Manifest, open_verified, volume_stream
from stackctl.day2.backup import live_limits, probe_image
from stackctl.day2.version import ImageVersion, is_newer
from stackctl.docker import compose as composer
from stackctl.docker import engine
from stackctl.docker import volumes as dd
from stackctl.errors import StackError

CHECK = r"""
import json, os, sqlite3, sys
path = sys.argv[1]
out = {"integrity": [], "revision": None, "chats": None}
if not os.path.exists(path):
    out["integrity"] = ["webui.db is missing"]
else:
    try:
        con = sqlite3.connect(path)
        out["integrity"] = [r[0] for r in con.execute("PRAGMA integrity_check")]
        for key, sql in (("revision", "SELECT version_num FROM alembic_version"),
                         ("chats", "SELECT count(*) FROM chat")):
            try:
                row = con.execute(sql).fetchone()
                out[key] = row[0] if row else None
            except sqlite3.Error:
                pass
        con.close()
    except sqlite3.Error as exc:
        out["integrity"] = [str(exc)]
print(json.dumps(out))
"""

_SH_HELPERS = r"""
set -eu
entries() { for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do [ -e "$e" ] || [ -L "$e" ] && echo "$e"; done; return 0; }
kept() { for k in $2; do [ "${1##*/}" = "$k" ] && return 0; done; return 1; }
copy_in() { entries "$1" | while IFS= read -r e; do kept "$e" "$3" || cp -a "$e" "$2"/; done; }
same_owner() { chown "$(stat -c %u:%g "$1")" "$2"; chmod "$(stat -c %a "$1")" "$2"; }
wipe() { entries "$1" | while IFS= read -r e; do kept "$e" "$2" || rm -rf "$e"; done; }
"""


@dataclass(frozen=True)
class Staged:
    integrity: str
    revision: str | None
    chats: int | None


@dataclass(frozen=True)
class RestoreResult:
    path: Path
    manifest: Manifest
    staged: Staged
    image: ImageVersion
    seconds: float


def refuse_if_newer(manifest: Manifest, image: ImageVersion) -> None:
    """StackError when the archive's Open WebUI is newer than the image's. Pure."""
    try:
        newer = is_newer(manifest.openwebui_version, image.version or "")
    except ValueError as exc:
        raise StackError(f"{exc} — refused; nothing was changed") from None
    if newer:
        raise StackError(
            f"the backup was written by Open WebUI {manifest.openwebui_version}, newer than "
            f"{image.version} in {image.image} (its database migrations cannot be undone) — "
            f"set OPENWEBUI_IMAGE to {manifest.openwebui_image or 'that version'} (or newer) in .env, "
            "then retry; nothing was changed")


def staged_verdict(output: str, image: ImageVersion) -> Staged:
    """Parse CHECK's output; StackError unless integrity is ok and the revision is known. Pure."""
    try:
        d = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise StackError(f"the integrity check did not run ({output.strip()[-200:] or 'no output'}) "
                         "— refused; nothing was changed") from None
    result = d.get("integrity") or ["no result"]
    if result != ["ok"]:
        raise StackError(f"webui.db in the backup fails SQLite's integrity check ({'; '.join(map(str, result))[:200]}) "
                         "— refused; nothing was changed")
    rev = d.get("revision")
    if rev and image.revisions and rev not in image.revisions:
        raise StackError(f"webui.db in the backup is at schema revision {rev}, which {image.image} "
                         f"(Open WebUI {image.version}) does not know — it comes from a newer Open WebUI; "
                         "refused; nothing was changed")
    return Staged("ok", rev, d.get("chats"))


def swap_script(volumes: tuple[str, ...], phase: str) -> str:
    """sh for the swap container: /t/<v> live, /s/<v> staged, /r/<v> rollback. Pure.

    ``swap``: copy live → rollback, then clear live and copy staged → live (the
    volume root takes the staged owner and mode). ``rollback``: clear live, copy
    rollback → live. Entries in EXCLUDED (caches left out of backups) stay in place.
    """
    if phase not in ("swap", "rollback"):
        raise ValueError(phase)
    lines = [_SH_HELPERS]
    for v in volumes:
        keep = " ".join(EXCLUDED.get(v, ()))
        if phase == "swap":
            lines += [f'copy_in /t/{v} /r/{v} "{keep}"', f"same_owner /t/{v} /r/{v}"]
        else:
            lines += [f'wipe /t/{v} "{keep}"', f'copy_in /r/{v} /t/{v} ""', f"same_owner /r/{v} /t/{v}"]
    for v in volumes if phase == "swap" else ():
        keep = " ".join(EXCLUDED.get(v, ()))
        lines += [f'wipe /t/{v} "{keep}"', f'copy_in /s/{v} /t/{v} ""', f"same_owner /s/{v} /t/{v}"]
    lines.append("sync")
    return "\n".join(lines) + "\n"


def restore(path: Path, *, confirm: Callable[[Manifest], bool],
            bring_up: Callable[[Stack], object] | None = None, reporter: Reporter | None = None,
            stack: Stack | None = None, client=None, compose=None) -> RestoreResult:
    r = reporter or Reporter.quiet()
    t0 = time.monotonic()
    stack = stack or load_stack()
    r.step(f"verifying {path.name}")
    archive = open_verified(path, live_limits(stack, client))  # one open file: verified, then streamed
    manifest = archive.manifest
    r.ok(f"archive verified: {len(manifest.files)} files, {manifest.total_bytes:,} bytes, "
         f"Open WebUI {manifest.openwebui_version}, taken {manifest.created_at}")
    client = client or engine.client()
    compose = compose or composer.find()
    image = probe_image(client, stack.env[OPENWEBUI.image_key], stack.project)
    refuse_if_newer(manifest, image)
    if not confirm(manifest):
        raise StackError("nothing restored (not confirmed)")

    vols = manifest.volumes
    scratch: dict[str, str] = {}
    try:
        staged = _stage(archive, vols, image, stack, client, scratch, r)
        _swap(vols, stack, client, compose, scratch, bring_up, r)
    finally:
        for name in scratch.values():
            dd.remove_volume(client, name)
    return RestoreResult(path, manifest, staged, image, time.monotonic() - t0)


def _stage(path, vols, image, stack, client, scratch, r) -> Staged:
    r.step("extracting into staging volumes")
    for v in vols:
        scratch[f"s/{v}"] = dd.scratch_volume(client, stack.project, "staging")
        dd.import_tar(client, image.image, stack.project, {scratch[f"s/{v}"]: f"/{v}"},
                      volume_stream(path, v))
    code, out = dd.run_script(client, image.image, stack.project, "check",
                              ["python3", "-c", CHECK, "/s/webui.db"],
                              {scratch[f"s/{OPENWEBUI.volume}"]: "/s"})
    staged = staged_verdict(out if code == 0 else f"exit {code}: {out}", image)
    r.ok(f"staged webui.db passes the integrity check (schema {staged.revision}, {staged.chats} chats)")
    return staged


def _swap(vols, stack, client, compose, scratch, bring_up, r) -> None:
    states = engine.services(client, stack.project)
    services = tuple(VOLUME_SERVICE[v] for v in vols)
    running = tuple(s for s in services if states.get(s) and states[s].state == "running")
    for v in vols:
        scratch[f"r/{v}"] = dd.scratch_volume(client, stack.project, "rollback")
    mounts = {dd.ensure_compose_volume(client, stack.project, v): f"/t/{v}" for v in vols}
    mounts |= {scratch[f"s/{v}"]: f"/s/{v}" for v in vols}
    mounts |= {scratch[f"r/{v}"]: f"/r/{v}" for v in vols}
    image = stack.env[OPENWEBUI.image_key]

    def run(phase: str) -> tuple[int, str]:
        return dd.run_script(client, image, stack.project, phase, ["sh", "-c", swap_script(vols, phase)], mounts)

    def put_back(why: str) -> StackError:
        existing = tuple(s for s in services if s in engine.services(client, stack.project))
        if existing:
            composer.run(compose, stack, "stop", *existing, capture=True, check=False)
        code, out = run("rollback")
        if code != 0:
            kept = [scratch.pop(f"r/{v}") for v in vols]  # keep them: they hold the old data
            return StackError(f"{why}; putting the previous data back ALSO failed ({out.strip()[-200:]}) — "
                              f"it is in volume(s) {', '.join(kept)}; copy it back by hand")
        if running:
            composer.run(compose, stack, "start", *running, capture=True, check=False)
        return StackError(f"{why}; the previous data was put back unchanged")

    present = tuple(s for s in services if s in states)  # running, restarting or stopped
    if present:
        r.step(f"stopping {', '.join(present)}")
        composer.run(compose, stack, "stop", *present, capture=True)
    code, out = run("swap")
    if code != 0:
        raise put_back(f"replacing the data failed ({out.strip()[-200:]})")
    r.ok("data replaced; bringing the stack up")
    if bring_up is None:
        return
    try:
        bring_up(stack)
    except StackError as err:
        raise put_back(f"the stack did not come up with the restored data ({err})") from None
