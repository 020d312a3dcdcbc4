"""`invoke restore FILE --yes`, with one seam set: the Docker client it is given
creates restore's scratch volumes of one purpose (``staging`` or ``rollback``) on a
small tmpfs — a full disk where the test wants one, on the real engine.

    python -m tests.e2e.day2.restore_seams --tmpfs rollback:8m FILE

Everything else is the command's own path: the library's restore with the same
bring-up the task uses, and the task's error edge (``error: …`` on stderr, its exit
code). Used by test_restore_faults.py; also works against older restore code (it
only relies on ``restore(..., client=)``), which is how the tests were seen to fail.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from invoke import Exit


class _Volumes:
    def __init__(self, volumes, purpose: str, size: str) -> None:
        self._volumes, self._purpose, self._size = volumes, purpose, size

    def create(self, name=None, **kw):
        if name and f"_day2-{self._purpose}-" in name:
            kw.update(driver="local", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": f"size={self._size}"})
        return self._volumes.create(name, **kw)

    def __getattr__(self, attr):
        return getattr(self._volumes, attr)


class TmpfsScratch:
    """A Docker client whose ``volumes.create`` puts one kind of scratch volume on tmpfs."""

    def __init__(self, client, purpose: str, size: str) -> None:
        self._client = client
        self.volumes = _Volumes(client.volumes, purpose, size)

    def __getattr__(self, attr):
        return getattr(self._client, attr)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmpfs", required=True, help="PURPOSE:SIZE, e.g. rollback:8m")
    ap.add_argument("file")
    args = ap.parse_args(argv)
    purpose, size = args.tmpfs.split(":", 1)

    from stackctl.cli import R, edge
    from stackctl.day2.restore import restore
    from stackctl.docker import engine
    from stackctl.lifecycle.up import up

    client = TmpfsScratch(engine.client(), purpose, size)

    @edge
    def run() -> None:
        res = restore(Path(args.file), confirm=lambda m: True, bring_up=lambda stack: up(reporter=R),
                      reporter=R, client=client)
        R.ok(f"restored {res.path.name}")

    try:
        run()
    except Exit as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
