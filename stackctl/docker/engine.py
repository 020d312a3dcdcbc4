"""The Docker Engine as the stack sees it: reachability, the project's containers,
published ports, and throwaway containers for reachability checks.

Containers are found by compose labels, never by name (compose v1 names them
``project_service_1``, v2 ``project-service-1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import docker
import docker.errors

from stackctl.errors import StackError

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


@dataclass(frozen=True)
class ServiceState:
    service: str
    container: str
    state: str          # running, exited, restarting, …
    health: str         # healthy, unhealthy, starting, none
    image: str
    restarts: int
    ports: tuple[str, ...]  # "127.0.0.1:3000->8080/tcp"

    @property
    def ok(self) -> bool:
        return self.state == "running" and self.health in ("healthy", "none")


def client() -> docker.DockerClient:
    """A connected client, or StackError saying how to start Docker."""
    try:
        c = docker.from_env(timeout=30)
        c.ping()
        return c
    except Exception as exc:  # the SDK raises several types for "no engine"
        raise StackError(
            f"Docker Engine is not reachable ({_short(exc)}) — start Docker Desktop "
            "(or `sudo systemctl start docker`) and retry", exit_code=2
        ) from None


def services(c: docker.DockerClient, project: str) -> dict[str, ServiceState]:
    out: dict[str, ServiceState] = {}
    for ctr in c.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"}):
        attrs = ctr.attrs
        st = attrs.get("State", {})
        health = (st.get("Health") or {}).get("Status", "none")
        ports = []
        for cport, binds in (attrs.get("NetworkSettings", {}).get("Ports") or {}).items():
            for b in binds or []:
                ports.append(f"{b.get('HostIp')}:{b.get('HostPort')}->{cport}")
        svc = ctr.labels.get(SERVICE_LABEL, ctr.name)
        out[svc] = ServiceState(
            service=svc, container=ctr.name, state=st.get("Status", "unknown"), health=health,
            image=attrs.get("Config", {}).get("Image", ""), restarts=attrs.get("RestartCount", 0),
            ports=tuple(sorted(ports)),
        )
    return out


def published_ports(states: dict[str, ServiceState]) -> set[int]:
    out = set()
    for s in states.values():
        for p in s.ports:
            host = p.split("->")[0]
            out.add(int(host.rsplit(":", 1)[1]))
    return out


def image_present(c: docker.DockerClient, ref: str) -> bool:
    try:
        c.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def curl_from_container(c: docker.DockerClient, image: str, url: str, timeout: int = 8,
                        bearer: str | None = None) -> tuple[bool, str]:
    """GET ``url`` from a throwaway container on a user-defined-like bridge with
    host.docker.internal mapped to the host gateway, exactly as the stack's
    containers see the host. ``bearer``: a key sent as ``Authorization: Bearer``
    (through the container's environment, never on a command line ``ps`` shows).
    Returns (ok, detail)."""
    # The newline matters: a last line without one was seen lost from a container's log.
    argv = ["curl", "-fsS", "-m", str(timeout), "-o", "/dev/null", "-w", "%{http_code}\n", url]
    env = {}
    if bearer:
        argv = ["sh", "-c", 'exec "$@" -H "Authorization: Bearer $STACK_BEARER"', "sh", *argv]
        env = {"STACK_BEARER": bearer}
    try:
        out = c.containers.run(
            image, argv[1:], entrypoint=argv[0], environment=env,
            extra_hosts={"host.docker.internal": "host-gateway"},
            remove=True, stdout=True, stderr=True, network_mode="bridge",
            labels={"org.foundry-chat.throwaway": "1"},
        )
        return True, out.decode(errors="replace").strip()
    except docker.errors.ContainerError as exc:
        return False, _short(exc.stderr.decode(errors="replace") if exc.stderr else exc)
    except docker.errors.DockerException as exc:
        return False, _short(exc)


def _short(exc: object) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:200]
