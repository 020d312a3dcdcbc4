"""Docker adapter for backup/restore/upgrade: volumes and throwaway containers.

Volumes are read and written through containers that are created but never
started (``get_archive`` / ``put_archive`` work on them and keep uid/gid/mode);
scripts (integrity check, swap, version probe) run in short-lived containers of
the Open WebUI image with no network. Every throwaway object is named with the
project prefix and labelled, and removed when done.
"""

from __future__ import annotations

import io
import secrets
import tarfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

import docker
import docker.errors

from stackctl.errors import StackError

THROWAWAY = {"org.foundry-chat.throwaway": "1"}
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_VOLUME = "com.docker.compose.volume"


def volume_name(project: str, volume: str) -> str:
    """Compose (v1 and v2) names a project's volume ``<project>_<volume>``."""
    return f"{project}_{volume}"


def volume_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.volumes.get(name)
        return True
    except docker.errors.NotFound:
        return False


def ensure_compose_volume(client: docker.DockerClient, project: str, volume: str) -> str:
    """The project's volume, created with compose's labels if missing (compose adopts it)."""
    name = volume_name(project, volume)
    if not volume_exists(client, name):
        client.volumes.create(name, labels={COMPOSE_PROJECT: project, COMPOSE_VOLUME: volume})
    return name


def scratch_volume(client: docker.DockerClient, project: str, purpose: str) -> str:
    name = f"{project}_day2-{purpose}-{secrets.token_hex(4)}"
    client.volumes.create(name, labels={**THROWAWAY, "org.foundry-chat.project": project})
    return name


def remove_volume(client: docker.DockerClient, name: str) -> None:
    with suppress(docker.errors.NotFound):
        client.volumes.get(name).remove(force=True)


def _name(project: str, purpose: str) -> str:
    return f"{project}-day2-{purpose}-{secrets.token_hex(4)}"


@contextmanager
def _created(client, image: str, project: str, purpose: str, mounts: dict[str, str],
             read_only: bool = False, argv: list[str] | None = None):
    """A created (not started) container with ``mounts`` {volume: path}; removed on exit."""
    mode = "ro" if read_only else "rw"
    ctr = client.containers.create(
        image, entrypoint=(argv or ["true"])[:1], command=(argv or ["true"])[1:],
        name=_name(project, purpose), labels=THROWAWAY, network_disabled=True,
        volumes={v: {"bind": p, "mode": mode} for v, p in mounts.items()},
    )
    try:
        yield ctr
    finally:
        with suppress(docker.errors.NotFound):
            ctr.remove(force=True)


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.it = iter(chunks)
        self.rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self.rest:
            try:
                self.rest = next(self.it)
            except StopIteration:
                return 0
        n = min(len(b), len(self.rest))
        b[:n], self.rest = self.rest[:n], self.rest[n:]
        return n


@contextmanager
def export_volume(client, image: str, project: str, volume: str) -> Iterator[tarfile.TarFile]:
    """The volume's content as a streaming tar (names relative to its root)."""
    with _created(client, image, project, "export", {volume: "/v"}, read_only=True) as ctr:
        chunks, _ = ctr.get_archive("/v/.")
        with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks), 1 << 20), mode="r|") as tar:
            yield tar


def import_tar(client, image: str, project: str, mounts: dict[str, str], chunks: Iterable[bytes]) -> None:
    """Extract a tar stream at ``/`` of a container with ``mounts`` (the engine keeps ownership)."""
    with _created(client, image, project, "import", mounts) as ctr:
        if not ctr.put_archive("/", chunks):
            raise StackError("the Docker Engine refused to write the backup into a staging volume")


def run_script(client, image: str, project: str, purpose: str, argv: list[str],
               mounts: dict[str, str], timeout: float = 600) -> tuple[int, str]:
    """Run ``argv`` in a throwaway container; (exit code, combined output)."""
    with _created(client, image, project, purpose, mounts, argv=argv) as ctr:
        ctr.start()
        code = ctr.wait(timeout=timeout).get("StatusCode", 1)
        return code, ctr.logs(stdout=True, stderr=True).decode(errors="replace")


def image_present(client, ref: str) -> bool:
    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def pull(client, ref: str) -> None:
    try:
        client.images.pull(ref)
    except docker.errors.APIError as exc:
        detail = (getattr(exc, "explanation", None) or str(exc)).splitlines()[0][:200]
        raise StackError(f"image {ref} is not present locally and pulling it failed ({detail}) — "
                         "check the tag, or load the image (`docker load`) / use a mirror, then retry",
                         exit_code=2) from None


