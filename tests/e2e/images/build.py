"""Local stand-ins for the stack's images, for machines that reach no container registry.

Invariant: an image's tag ends in a hash of everything that goes into it (the recipe,
the Dockerfile and every file copied in, pinned versions, the host CA bundle, and the
parent image's tag), so ``docker image inspect TAG`` succeeding means the image is
current and nothing is rebuilt. The cache is only an optimisation: removing any of
these images just makes the next call build it again.

An official image already present locally (loaded from a tarball, a mirror) is always
preferred over a stand-in. Grafana has no stand-in: it is neither in Debian nor on
PyPI/npm, so the stack runs without its ``grafana`` profile unless the official image
is present.

    python -m tests.e2e.images.build            # build what is missing, print the env
    python -m tests.e2e.images.build --check    # only report what would be built
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stackctl.config.settings import BY_KEY

Progress = Callable[[str], None]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the legacy builder colours RUN's stderr

HERE = Path(__file__).resolve().parent
REPO_PREFIX = "foundry-chat-test"

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
TORCH_WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")

DEBIAN_SUITE = "bookworm"
# python3-pip + python-is-python3 (and no EXTERNALLY-MANAGED marker, see base/Dockerfile)
# make the base a drop-in for python:3.11-slim, the exporter's default base image.
BASE_PACKAGES = (
    "python3",
    "python3-venv",
    "python3-pip",
    "python-is-python3",
    "ca-certificates",
    "curl",
    "wget",
    "jq",
)
OPENWEBUI_VERSION = "0.12.4"
PROMETHEUS_DEB_VERSION = "2.42.*"  # what bookworm ships; Prometheus 3 is not in Debian
ALERTMANAGER_DEB_VERSION = "0.25.*"  # bookworm's; msteams_configs (0.26+) is out of reach

# The official images, read from the one place that pins them.
OFFICIAL = {
    "OPENWEBUI_IMAGE": BY_KEY["OPENWEBUI_IMAGE"].default,
    "PROMETHEUS_IMAGE": BY_KEY["PROMETHEUS_IMAGE"].default,
    "EXPORTER_BASE_IMAGE": BY_KEY["EXPORTER_BASE_IMAGE"].default,
    "GRAFANA_IMAGE": BY_KEY["GRAFANA_IMAGE"].default,
    "ALERTMANAGER_IMAGE": BY_KEY["ALERTMANAGER_IMAGE"].default,
}
GRAFANA_UNAVAILABLE = (
    "Grafana cannot be built here (not in Debian; the PyPI/npm packages named grafana "
    "are empty placeholders): the stack runs without its 'grafana' profile"
)


class ImageBuildError(RuntimeError):
    """A build step failed; the message names the step and the command to rerun."""


# --- keys -----------------------------------------------------------------------------


def inputs_key(parts: Iterable[tuple[str, bytes]]) -> str:
    """A short content hash of named inputs; order-sensitive, names included."""
    h = hashlib.sha256()
    for name, data in parts:
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:12]


def _file_digest(path: Path) -> bytes:
    """sha256 of a (possibly large) file, as bytes to feed into inputs_key."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise ImageBuildError(f"{path} is missing; the image recipes need it")
    return path.read_bytes()


# --- docker adapter ---------------------------------------------------------------------


@dataclass
class Docker:
    """The few docker CLI calls the builder makes; ``binary`` is the CLI to use."""

    binary: str = "docker"
    env: dict[str, str] = field(
        # The legacy builder is what every client here has (no buildx plugin).
        default_factory=lambda: {**os.environ, "DOCKER_BUILDKIT": "0"}
    )

    def image_exists(self, ref: str) -> bool:
        return (
            subprocess.run(
                [self.binary, "image", "inspect", ref],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            ).returncode
            == 0
        )

    def run(self, args: list[str], progress: Progress, prefix: str) -> None:
        _stream([self.binary, *args], progress, prefix, env=self.env)


def _stream(
    cmd: list[str], progress: Progress, prefix: str, env: dict[str, str] | None = None
) -> None:
    """Run ``cmd``, passing each output line to ``progress``; raise with the tail on failure."""
    tail: list[str] = []
    with subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = _ANSI.sub("", line).rstrip()
            if line:
                progress(f"[{prefix}] {line}")
                tail = [*tail[-19:], line]
    if proc.returncode != 0:
        raise ImageBuildError(
            f"{prefix}: `{' '.join(cmd)}` exited with {proc.returncode}; last output:\n"
            + "\n".join(tail)
        )


# --- recipes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """A Dockerfile folder built FROM ``parent`` into ``repo:version-KEY``."""

    name: str
    version: str
    folder: Path
    build_args: dict[str, str]
    extra_files: dict[str, Path] = field(default_factory=dict)  # context name -> host file
    parent_arg: str = "BASE_IMAGE"

    def key(self, parent: str) -> str:
        parts: list[tuple[str, bytes]] = [("parent", parent.encode())]
        parts += [(f"arg:{k}", v.encode()) for k, v in sorted(self.build_args.items())]
        parts += [
            (f"ctx:{p.relative_to(self.folder)}", p.read_bytes())
            for p in sorted(self.folder.rglob("*"))
            if p.is_file()
        ]
        parts += [(f"file:{n}", _file_digest(p)) for n, p in sorted(self.extra_files.items())]
        return inputs_key(parts)

    def tag(self, parent: str) -> str:
        return f"{REPO_PREFIX}/{self.name}:{self.version}-{self.key(parent)}"


def base_recipe() -> Recipe:
    return Recipe(
        name="base",
        version=DEBIAN_SUITE,
        folder=HERE / "base",
        build_args={},
        extra_files={"ca-certificates.crt": CA_BUNDLE},
        parent_arg="ROOTFS",
    )


def openwebui_recipe() -> Recipe:
    return Recipe(
        name="open-webui",
        version=OPENWEBUI_VERSION,
        folder=HERE / "open-webui",
        build_args={"OPENWEBUI_VERSION": OPENWEBUI_VERSION, "TORCH_WHEEL": TORCH_WHEEL.name},
        extra_files={TORCH_WHEEL.name: TORCH_WHEEL},
    )


def prometheus_recipe() -> Recipe:
    return Recipe(
        name="prometheus",
        version="2.42",
        folder=HERE / "prometheus",
        build_args={"PROMETHEUS_DEB_VERSION": PROMETHEUS_DEB_VERSION},
    )


def alertmanager_recipe() -> Recipe:
    return Recipe(
        name="alertmanager",
        version="0.25",
        folder=HERE / "alertmanager",
        build_args={"ALERTMANAGER_DEB_VERSION": ALERTMANAGER_DEB_VERSION},
    )


def _mmdebstrap_cmd(target: Path) -> list[str]:
    cmd = [
        "mmdebstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        DEBIAN_SUITE,
        str(target),
    ]
    # The machine's own mirror configuration when it has one; mmdebstrap's default
    # (deb.debian.org + updates + security) otherwise.
    if APT_SOURCES.is_file():
        cmd.append(str(APT_SOURCES))
    return cmd


def rootfs_tag() -> str:
    sources = APT_SOURCES.read_bytes() if APT_SOURCES.is_file() else b""
    key = inputs_key(
        [("cmd", " ".join(_mmdebstrap_cmd(Path("OUT"))).encode()), ("sources", sources)]
    )
    return f"{REPO_PREFIX}/rootfs:{DEBIAN_SUITE}-{key}"


# --- building -----------------------------------------------------------------------------


@dataclass
class Builder:
    docker: Docker = field(default_factory=Docker)
    progress: Progress = print
    force: bool = False
    dry_run: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def _have(self, tag: str) -> bool:
        return not self.force and self.docker.image_exists(tag)

    def rootfs(self) -> str:
        tag = rootfs_tag()
        if self._have(tag):
            self.progress(f"rootfs: {tag} (cached)")
            return tag
        if self.dry_run:
            self.progress(f"rootfs: {tag} would be built (mmdebstrap)")
            return tag
        if shutil.which("mmdebstrap") is None:
            raise ImageBuildError("mmdebstrap not found: apt-get install -y mmdebstrap")
        self.progress(f"rootfs: building {tag} with mmdebstrap (~20 s)")
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="fl-rootfs-") as tmp:
            tar = Path(tmp) / "rootfs.tar"
            _stream(_mmdebstrap_cmd(tar), self.progress, "rootfs")
            self.docker.run(["import", str(tar), tag], self.progress, "rootfs")
        self.timings["rootfs"] = time.monotonic() - start
        return tag

    def build(self, recipe: Recipe, parent: str) -> str:
        tag = recipe.tag(parent)
        if self._have(tag):
            self.progress(f"{recipe.name}: {tag} (cached)")
            return tag
        if self.dry_run:
            self.progress(f"{recipe.name}: {tag} would be built")
            return tag
        self.progress(f"{recipe.name}: building {tag}")
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"fl-{recipe.name}-") as tmp:
            ctx = Path(tmp) / "ctx"
            shutil.copytree(recipe.folder, ctx)
            for name, src in recipe.extra_files.items():
                _link_or_copy(src, ctx / name)
            args = ["build", "--network", "host", "--force-rm", "--tag", tag]
            args += ["--label", f"{REPO_PREFIX}.recipe={recipe.name}"]
            for k, v in {recipe.parent_arg: parent, **recipe.build_args}.items():
                args += ["--build-arg", f"{k}={v}"]
            self.docker.run([*args, str(ctx)], self.progress, recipe.name)
        self.timings[recipe.name] = time.monotonic() - start
        self.progress(f"{recipe.name}: built in {self.timings[recipe.name]:.0f} s")
        return tag

    def base(self) -> str:
        return self.build(base_recipe(), self.rootfs())


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def ensure_base(progress: Progress = print, docker: Docker | None = None) -> str:
    """Tag of the local Debian base (python3, venv, curl, wget, jq, host CA); builds if missing."""
    return Builder(docker=docker or Docker(), progress=progress).base()


def ensure_images(
    progress: Progress = print,
    docker: Docker | None = None,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, str]:
    """The image variables to pass to compose, building stand-ins for what is missing.

    Keys: OPENWEBUI_IMAGE, PROMETHEUS_IMAGE, ALERTMANAGER_IMAGE, EXPORTER_BASE_IMAGE, and COMPOSE_PROFILES
    ("" when Grafana is unavailable, see GRAFANA_UNAVAILABLE) plus GRAFANA_IMAGE when
    the official Grafana image is present locally. Also STACK_BUILD_NETWORK=host: the
    stack's own exporter build pip-installs, and builds reach PyPI only that way here.
    """
    docker = docker or Docker()
    b = Builder(docker=docker, progress=progress, force=force, dry_run=dry_run)
    present = {k: not force and docker.image_exists(ref) for k, ref in OFFICIAL.items()}
    env: dict[str, str] = {"STACK_BUILD_NETWORK": "host"}
    base: str | None = None

    def local_base() -> str:
        nonlocal base
        base = base or b.base()
        return base

    # The Alertmanager stand-in is a Debian package on the shared base: ~8 s cold.
    recipes = [("OPENWEBUI_IMAGE", openwebui_recipe), ("PROMETHEUS_IMAGE", prometheus_recipe),
               ("ALERTMANAGER_IMAGE", alertmanager_recipe)]
    for key, recipe in recipes:
        if present[key]:
            progress(f"{key}: official {OFFICIAL[key]} is present locally; using it")
            env[key] = OFFICIAL[key]
        else:
            env[key] = b.build(recipe(), local_base())
    env["EXPORTER_BASE_IMAGE"] = (
        OFFICIAL["EXPORTER_BASE_IMAGE"] if present["EXPORTER_BASE_IMAGE"] else local_base()
    )
    if present["GRAFANA_IMAGE"]:
        env["GRAFANA_IMAGE"] = OFFICIAL["GRAFANA_IMAGE"]
        env["COMPOSE_PROFILES"] = "grafana"
    else:
        progress(f"grafana: unavailable — {GRAFANA_UNAVAILABLE}")
        env["COMPOSE_PROFILES"] = ""
    return env


def ensure_alertmanager(progress: Progress = print, docker: Docker | None = None) -> str:
    """The Alertmanager image to run: the official one when present, else the stand-in."""
    docker = docker or Docker()
    if docker.image_exists(OFFICIAL["ALERTMANAGER_IMAGE"]):
        return OFFICIAL["ALERTMANAGER_IMAGE"]
    b = Builder(docker=docker, progress=progress)
    return b.build(alertmanager_recipe(), b.base())


def grafana_available(env: dict[str, str]) -> bool:
    """Whether ``env`` (from ensure_images) runs Grafana."""
    return "grafana" in env.get("COMPOSE_PROFILES", "").split(",")


# --- CLI ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.e2e.images.build",
        description="Build (or find cached) local stand-in images for the e2e tier.",
    )
    p.add_argument(
        "--check", action="store_true", help="report tags and what would be built; build nothing"
    )
    p.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    p.add_argument("--base-only", action="store_true", help="only the base image")
    p.add_argument("--alertmanager", action="store_true",
                   help="only the Alertmanager image (official if present, else the stand-in)")
    args = p.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, flush=True)

    start = time.monotonic()
    try:
        if args.alertmanager:
            env = {"ALERTMANAGER_IMAGE": ensure_alertmanager(say)}
        elif args.base_only:
            b = Builder(progress=say, force=args.force, dry_run=args.check)
            env = {"BASE_IMAGE": b.base()}
        else:
            env = ensure_images(say, force=args.force, dry_run=args.check)
    except ImageBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    say(f"done in {time.monotonic() - start:.0f} s")
    for k, v in env.items():
        print(f"{k}={v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
