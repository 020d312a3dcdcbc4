"""How long `invoke up` takes, next to what the slowest service itself needs.

On a throwaway stack (own compose project, ports, state dir; images as the e2e
tier gets them), in one run:

  cold   `invoke up` from nothing: fresh volumes, embedded Foundry started (images cached)
  warm   `invoke down` (data kept), then `invoke up` again: time to all-healthy
  own    the slowest service's own start-to-healthy in that warm run: its container's
         StartedAt to the end of its first passing healthcheck (Docker's health log)

and prints warm/own as the overhead ratio of `up` itself (target ≤ 1.3).

    .venv/bin/python perf/stack_up.py [--runs 3]
"""

from __future__ import annotations

import _venv  # stdlib only: re-runs this script in the project's venv if needed

_venv.ensure()

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stackctl.docker import engine
from tests.e2e.images.build import ensure_images
from tests.plugins.stack import E2EStack, write_env


def _ts(text: str) -> float:
    """Docker's RFC 3339 timestamps carry nanoseconds; datetime takes microseconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0"))


def own_start_to_healthy(project: str) -> dict[str, float]:
    """Per service: StartedAt → end of the first passing healthcheck."""
    c = docker.from_env()
    out = {}
    for ctr in c.containers.list(filters={"label": f"{engine.PROJECT_LABEL}={project}"}):
        st = ctr.attrs["State"]
        passing = [h for h in (st.get("Health") or {}).get("Log", []) if h.get("ExitCode") == 0]
        if passing:
            started = _ts(st["StartedAt"])
            first_ok = min(_ts(h["End"]) for h in passing if _ts(h["End"]) >= started)
            out[ctr.labels[engine.SERVICE_LABEL]] = first_ok - started
    return out


def timed_up(s: E2EStack) -> float:
    t0 = time.monotonic()
    cp = s.invoke("up", timeout=1500)
    if cp.returncode:
        raise SystemExit(f"invoke up failed:\n{cp.stdout}\n{cp.stderr}")
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="warm runs (median reported)")
    args = ap.parse_args()
    sys.stderr.write = lambda *a, **k: 0  # keep E2EStack's transcript out of the table
    images = ensure_images(progress=lambda msg: None)
    root = Path(tempfile.mkdtemp(prefix="bench-stack-up-"))
    s = E2EStack(root / ".env", root / "state")
    write_env(s.env_file, s.state_dir, {k: v for k, v in images.items() if k.endswith("_IMAGE")})
    try:
        cold = timed_up(s)
        warm, own, slowest = [], [], []
        for _ in range(args.runs):
            s.invoke("down", timeout=300)
            warm.append(timed_up(s))
            times = own_start_to_healthy(s.env["COMPOSE_PROJECT_NAME"])
            name, secs = max(times.items(), key=lambda kv: kv[1])
            own.append(secs)
            slowest.append(name)
    finally:
        s.invoke("down", "--volumes", "--yes", timeout=300)
        s.invoke("foundry.stop", timeout=120)
    w, o = statistics.median(warm), statistics.median(own)
    print(f"{'measure':<46}{'seconds':>10}")
    print(f"{'cold `invoke up` (fresh volumes, Foundry start)':<46}{cold:>10.1f}")
    print(f"{'warm `invoke up` to all-healthy (median)':<46}{w:>10.1f}")
    print(f"{'slowest service own start-to-healthy (median)':<46}{o:>10.1f}   ({', '.join(sorted(set(slowest)))})")
    print(f"{'ratio warm / own (target ≤ 1.3)':<46}{w / o:>10.2f}")
    print(f"runs: warm {[round(x, 1) for x in warm]}, own {[round(x, 1) for x in own]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
