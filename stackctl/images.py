"""Images the stack runs: pull what is missing, build the exporter from exporter/.

The exporter image carries a label with a hash of its build inputs, so
`invoke up` rebuilds it only when exporter/ (or its base image) changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from .context import Stack
from .errors import StackError

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
    want = source_hash(stack.root / "exporter", stack.env["EXPORTER_BASE_IMAGE"])
    try:
        img = client.images.get(stack.env["EXPORTER_IMAGE"])
    except Exception:
        return False, want
    return (img.labels or {}).get(SOURCE_LABEL) == want, want


def build_exporter(stack: Stack, digest: str) -> None:
    """docker build with live output (it is a long operation: show it)."""
    argv = ["docker", "build", "-t", stack.env["EXPORTER_IMAGE"],
            "--build-arg", f"BASE_IMAGE={stack.env['EXPORTER_BASE_IMAGE']}",
            "--label", f"{SOURCE_LABEL}={digest}"]
    if os.environ.get("STACK_BUILD_NETWORK"):
        argv += ["--network", os.environ["STACK_BUILD_NETWORK"]]
    argv.append(str(stack.root / "exporter"))
    cp = subprocess.run(argv)
    if cp.returncode != 0:
        raise StackError(
            f"building the exporter image failed (exit {cp.returncode}) — see the build output "
            "above; behind a proxy set STACK_BUILD_NETWORK=host, or point EXPORTER_BASE_IMAGE at a "
            "reachable mirror"
        )
