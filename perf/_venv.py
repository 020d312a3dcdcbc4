"""The project's benchmarks run in its venv: started with another Python (the
README's `.venv/bin/python perf/NAME.py` forgotten), re-run there, or say in one
line how to make it. Imports nothing outside the standard library."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEEDED = ("httpx", "rich", "h11", "prometheus_client", "yaml")  # what the benchmarks import
_AGAIN = "STACK_PERF_IN_VENV"  # set on the re-run: never loop


def ensure() -> None:
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if not missing:
        return
    if not os.environ.get(_AGAIN):
        for venv in filter(None, (os.environ.get("STACK_VENV"), str(REPO / ".venv"))):
            for py in (Path(venv) / "bin" / "python", Path(venv) / "Scripts" / "python.exe"):
                if py.exists():
                    os.environ[_AGAIN] = "1"
                    os.execv(str(py), [str(py), *sys.argv])
    script = Path(sys.argv[0]).resolve().relative_to(REPO).as_posix()
    cd = "" if Path.cwd().resolve() == REPO else f"cd {REPO} && "  # hints work from where typed
    sys.exit(f"error: {', '.join(missing)} not installed for {sys.executable} — run `{cd}./stack test` "
             f"once (it makes .venv), then `{cd}.venv/bin/python {script}`")
