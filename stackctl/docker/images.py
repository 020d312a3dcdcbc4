"""Images the stack runs: pull what is missing, build the exporter from exporter/.

Pulls go through the engine API, not compose: they need no .env interpolation
(the Foundry URL is only known later in `up`) and show one progress line per
image. The exporter image carries a label with a hash of its build inputs, so
`invoke up` rebuilds it only when exporter/ (or its base image) changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import docker.errors

from stackctl.config.settings import BASE_IMAGE_KEY, EXPORTER
from stackctl.config.stack import Stack
from stackctl.console import Reporter
from stackctl.errors import StackError

SOURCE_LABEL = "org.foundry-chat.source-hash"
_SKIP = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def source_hash(src: Path, base_image: str) -> str:
    h = hashlib.sha256(base_image.encode())
    for p in sorted(src.rglob("*")):
        if p.is_file() and not (_SKIP & set(p.parts)) and not p.name.endswith(".pyc") \
                and ".egg-info" not in str(p):
            h.update(str(p.relative_to(src)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def exporter_up_to_date(client, stack: Stack) -> tuple[bool, str]:
    want = source_hash(stack.root / EXPORTER.build, stack.env[BASE_IMAGE_KEY])
    try:
        img = client.images.get(stack.env[EXPORTER.image_key])
    except docker.errors.ImageNotFound:
        return False, want
    return (img.labels or {}).get(SOURCE_LABEL) == want, want


def build_exporter(stack: Stack, digest: str) -> None:
    """docker build with live output (it is a long operation: show it)."""
    argv = ["docker", "build", "-t", stack.env[EXPORTER.image_key],
            "--build-arg", f"BASE_IMAGE={stack.env[BASE_IMAGE_KEY]}",
            "--label", f"{SOURCE_LABEL}={digest}"]
    if os.environ.get("STACK_BUILD_NETWORK"):
        argv += ["--network", os.environ["STACK_BUILD_NETWORK"]]
    argv.append(str(stack.root / EXPORTER.build))
    cp = subprocess.run(argv)
    if cp.returncode != 0:
        raise StackError(
            f"building the exporter image failed (exit {cp.returncode}) — see the build output "
            "above; behind a proxy set STACK_BUILD_NETWORK=host, or point EXPORTER_BASE_IMAGE at a "
            "reachable mirror"
        )


def pull_progress(events: Iterable[dict]) -> Iterator[tuple[int, int]]:
    """Fold the engine's pull events into (bytes done, bytes known) across layers. Pure.

    Raises StackError on an ``error`` event (unknown tag, auth, network).
    """
    layers: dict[str, tuple[int, int]] = {}
    for ev in events:
        if ev.get("error"):
            raise StackError(str(ev["error"]).strip())
        detail = ev.get("progressDetail") or {}
        layer = ev.get("id")
        if layer and detail.get("total"):
            layers[layer] = (int(detail.get("current", 0)), int(detail["total"]))
        elif layer and ev.get("status") in ("Pull complete", "Already exists") and layer in layers:
            layers[layer] = (layers[layer][1], layers[layer][1])
        yield sum(c for c, _ in layers.values()), sum(t for _, t in layers.values())


def pull(client, ref: str, key: str, reporter: Reporter) -> None:
    """Pull ``ref`` with progress; one-line StackError naming the .env key on failure."""
    step = -1
    try:
        for done, total in pull_progress(client.api.pull(ref, stream=True, decode=True)):
            pct = int(100 * done / total) if total else 0
            if pct // 10 > step:
                step = pct // 10
                reporter.info(f"  {ref}: {done / 2**20:,.0f} of {total / 2**20:,.0f} MiB ({pct}%)")
    except StackError as err:
        raise StackError(f"cannot pull {ref} ({err}) — check the network or registry login, or "
                         f"point {key} in .env at a mirror or a local image") from None
    except Exception as exc:  # docker.errors.APIError and transport errors
        text = str(getattr(exc, "explanation", None) or exc).strip()
        detail = text.splitlines()[-1][:200] if text else type(exc).__name__
        raise StackError(f"cannot pull {ref} ({detail}) — check the network or registry login, "
                         f"or point {key} in .env at a mirror or a local image") from None
    reporter.ok(f"pulled {ref}")
