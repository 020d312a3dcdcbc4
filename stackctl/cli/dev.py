"""`test lint dashboards`: the developer's commands (tests, linters, generated files)."""

from __future__ import annotations

import subprocess
import sys

from invoke import Collection, Exit, task


@task(help={"tier": "unit, integration or e2e (default: all three)",
            "k": "Only tests matching this expression (pytest -k)."})
def test(c, tier=None, k=None):
    """Lint, then every test tier (unit, integration, e2e) in one pytest run."""
    lint(c)
    # The 15 slowest tests close the report: where the suite's time goes (CI budget).
    args = [sys.executable, "-m", "pytest", "--durations=15"]
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

    # --syntax-only: the config names the gateway's key file, which exists only in the
    # container (tests/unit/observability checks it in full on a copy with the secrets).
    for args in (["check", "config", "--syntax-only", "prometheus/prometheus.yml"],
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


ns = Collection(test, lint, dashboards)
