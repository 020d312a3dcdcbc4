"""Benchmark: `foundry.serve` start-to-ready next to the bare SDK sequence, same run.

    .venv/bin/python perf/foundry_serve.py [--runs N] [--model-path DIR]

Both sides start a fresh process with a fresh state dir and serve the same
local model behind a loopback catalog stub (no network):

- bare SDK: spawn python, import foundry_local_sdk, initialize, register the
  folder, load, start_web_service — timed from spawn to "started" printed;
- foundry.serve: ``stackctl.foundry.serve()`` from call to return (spawn,
  checks, the same SDK sequence, state file, HTTP readiness check); and the
  whole ``invoke foundry.serve`` command (adds invoke's own start-up).

Prints medians side by side and the ratio serve/bare (target <= 1.5). No
asserts on timing: numbers depend on the machine.
"""

from __future__ import annotations

import _venv  # stdlib only: re-runs this script in the project's venv if needed

_venv.ensure()

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stackctl.foundry import serve, stop
from tests.plugins.common import free_port

BARE = r"""
import json, sys, time
t = {"spawn_to_main": None}
t0 = time.monotonic()
from stackctl.foundry import catalog_stub
stub = catalog_stub.start()
from foundry_local_sdk import CatalogType, Configuration, FoundryLocalManager, ModelInfoBuilder
t["import"] = time.monotonic() - t0
state, port, model = sys.argv[1], sys.argv[2], sys.argv[3]
s = time.monotonic()
FoundryLocalManager.initialize(Configuration(
    app_name="bench", app_data_dir=state + "/app", model_cache_dir=state + "/models", logs_dir=state + "/logs",
    web=Configuration.WebService(urls=f"http://127.0.0.1:{port}"), catalog_urls=[(stub, None)],
    disable_nonessential_telemetry=True))
m = FoundryLocalManager.instance
t["initialize"] = time.monotonic() - s; s = time.monotonic()
with ModelInfoBuilder() as meta:
    meta.set_string_property("task", "chat-completion")
    model_obj = m.get_catalog(CatalogType.LOCAL).register_model(model_path=model, model_id="bench-generic-cpu:1", metadata=meta)
t["register"] = time.monotonic() - s; s = time.monotonic()
model_obj.load()
t["load"] = time.monotonic() - s; s = time.monotonic()
m.start_web_service()
t["start"] = time.monotonic() - s
print(json.dumps(t), flush=True)
sys.stdin.read()  # stay up until the parent closes stdin
"""


def bare_once(model: Path) -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as state:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", BARE, state, str(free_port()), str(model)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        line = proc.stdout.readline()
        elapsed = time.monotonic() - t0
        proc.stdin.close()
        proc.wait(timeout=60)
        return elapsed, json.loads(line)


def serve_once(model: Path) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as state:
        t0 = time.monotonic()
        serve(Path(state), port=free_port(), model_path=str(model), name="bench")
        elapsed = time.monotonic() - t0
        stop(Path(state))
        return elapsed


def invoke_once(model: Path) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-invoke-") as state:
        env = dict(os.environ, STACK_STATE_DIR=state)
        cmd = [str(Path(sys.executable).with_name("invoke")), "-r", str(REPO), "foundry.serve",
               "--model-path", str(model), "--name", "bench", "--port", str(free_port())]
        t0 = time.monotonic()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        elapsed = time.monotonic() - t0
        stop(Path(state))
        return elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--model-path", type=Path, default=REPO / "tests" / "fixtures" / "tiny-model")
    args = p.parse_args()
    bare, steps, served, invoked = [], [], [], []
    for _ in range(args.runs):  # interleaved, so machine noise hits both sides alike
        b, s = bare_once(args.model_path)
        bare.append(b)
        steps.append(s)
        served.append(serve_once(args.model_path))
        invoked.append(invoke_once(args.model_path))

    def row(name: str, xs: list[float]) -> str:
        return f"  {name:<34}{statistics.median(xs):>8.3f} s{min(xs):>9.3f} s{max(xs):>9.3f} s"

    print(f"foundry.serve start-to-ready vs the bare SDK sequence — {args.model_path.name}, {args.runs} runs")
    print(f"  {'':<34}{'median':>10}{'min':>11}{'max':>11}")
    print(row("bare SDK (spawn .. web started)", bare))
    for key in ("import", "initialize", "register", "load", "start"):
        print(row(f"  of which {key}", [s[key] for s in steps]))
    print(row("foundry.serve() (call .. ready)", served))
    print(row("invoke foundry.serve (command)", invoked))
    ratio = statistics.median(served) / statistics.median(bare)
    print(f"  ratio foundry.serve / bare SDK      {ratio:.2f}  (target <= 1.5)")
    print(f"  ratio invoke command / bare SDK     {statistics.median(invoked) / statistics.median(bare):.2f}  (adds invoke's start-up)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
