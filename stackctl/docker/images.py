"""Images the stack runs: pull what is missing, build its own (exporter, gateway).

Pulls go through the engine API, not compose: they need no .env interpolation
(the Foundry URL is only known later in `up`) and show one progress line per
image. An image the stack builds carries a label with a hash of its build inputs, so
`up` rebuilds it only when its sources (or the base image) changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import docker.errors

from stackctl.config.settings import BASE_IMAGE_KEY, SERVICES, Service
from stackctl.config.stack import Stack
from stackctl.console import Reporter
from stackctl.errors import StackError

SOURCE_LABEL = "org.foundry-chat.source-hash"
_SKIP = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def _files(root: Path, sources: tuple[str, ...]) -> Iterator[Path]:
    for rel in sources:
        top = root / rel
        found = [top] if top.is_file() else sorted(top.rglob("*"))
        for p in found:
            if p.is_file() and not (_SKIP & set(p.parts)) and not p.name.endswith(".pyc") \
                    and ".egg-info" not in str(p):
                yield p


def source_hash(root: Path, sources: tuple[str, ...], base_image: str) -> str:
    """A hash of an image's build inputs (files under ``sources``, relative to ``root``)."""
    h = hashlib.sha256(base_image.encode())
    for p in sorted(set(_files(root, sources))):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def _sources(svc: Service) -> tuple[str, ...]:
    return svc.sources or (svc.build,)


def up_to_date(client, stack: Stack, svc: Service) -> tuple[bool, str]:
    """(the image of ``svc`` was built from today's sources, their hash)."""
    want = source_hash(stack.root, _sources(svc), stack.env[BASE_IMAGE_KEY])
    try:
        img = client.images.get(stack.env[svc.image_key])
    except docker.errors.ImageNotFound:
        return False, want
    return (img.labels or {}).get(SOURCE_LABEL) == want, want


def build(stack: Stack, svc: Service, digest: str) -> None:
    """docker build with live output (it is a long operation: show it)."""
    argv = ["docker", "build", "-t", stack.env[svc.image_key],
            "--build-arg", f"BASE_IMAGE={stack.env[BASE_IMAGE_KEY]}",
            "--label", f"{SOURCE_LABEL}={digest}"]
    if svc.dockerfile:
        argv += ["-f", str(stack.root / svc.dockerfile)]
    if os.environ.get("STACK_BUILD_NETWORK"):
        argv += ["--network", os.environ["STACK_BUILD_NETWORK"]]
    argv.append(str(stack.root / svc.build))
    cp = subprocess.run(argv)
    if cp.returncode != 0:
        raise StackError(
            f"building the {svc.name} image failed (exit {cp.returncode}) — see the build output "
            f"above; behind a proxy set STACK_BUILD_NETWORK=host, or point {BASE_IMAGE_KEY} at a "
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
    why = try_pull(client, ref, reporter)
    if why is not None:
        raise StackError(f"cannot pull {ref} ({why}) — check the network or registry login, or "
                         f"point {key} in .env at a mirror or a local image")


def try_pull(client, ref: str, reporter: Reporter) -> str | None:
    """Pull ``ref`` with progress lines; None when pulled, else why not (one line)."""
    step = -1
    try:
        for done, total in pull_progress(client.api.pull(ref, stream=True, decode=True)):
            pct = int(100 * done / total) if total else 0
            if pct // 10 > step:
                step = pct // 10
                reporter.info(f"  {ref}: {done / 2**20:,.0f} of {total / 2**20:,.0f} MiB ({pct}%)")
    except StackError as err:
        return str(err)
    except Exception as exc:  # docker.errors.APIError and transport errors
        text = str(getattr(exc, "explanation", None) or exc).strip()
        return text.splitlines()[-1][:200] if text else type(exc).__name__
    reporter.ok(f"pulled {ref}")
    return None


def needed(stack: Stack, built_fresh: bool) -> list[str]:
    """The .env image keys this run needs: every enabled service's image that the stack
    does not build, and the base image when an image of its own must be built."""
    keys = [s.image_key for s in SERVICES if s.name in stack.services and not s.build]
    return keys + ([] if built_fresh else [BASE_IMAGE_KEY])


def ensure_present(client, stack: Stack, keys: list[str], present, reporter: Reporter) -> None:
    """Pull every missing image of ``keys``; when any cannot be had, ONE StackError naming
    each with its .env key and why — all of them, so one run tells the whole story."""
    missing = [k for k in keys if not present(stack.env[k])]
    if missing:
        reporter.step(f"pulling {len(missing)} image(s) (the first run downloads a few GB)")
    failed = [(k, why) for k in missing if (why := try_pull(client, stack.env[k], reporter)) is not None]
    if failed:
        raise StackError(missing_message(stack, failed), exit_code=2)


def missing_message(stack: Stack, failed: list[tuple[str, str]]) -> str:
    """The one message for images that are neither present nor pullable. Pure."""
    listed = "; ".join(f"{k}={stack.env[k]} ({why})" for k, why in failed)
    return (f"{len(failed)} image(s) are not present and cannot be pulled: {listed} — check the "
            "network or registry login, or point "
            f"{', '.join(k for k, _ in failed)} in .env at a mirror or at images loaded with "
            "`docker load`, then retry")
