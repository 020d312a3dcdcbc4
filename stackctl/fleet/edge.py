"""``./stack edge``: this machine's Foundry Local, guarded, for another machine's stack.

Foundry Local binds loopback only and has an unauthenticated ``/shutdown``; the
answer is the stack's own gateway program, alone, in front of it: listening on the
LAN address given, requiring EDGE_API_KEY (generated into this machine's .env),
passing only the five doors, following Foundry to a new port when it was found
through its CLI. :func:`plan` is everything but the exec (testable); the task
prints the lines the other machine needs and replaces itself with the gateway.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from dataclasses import dataclass, field

import psutil

from stackctl.config.settings import EDGE_KEY, GATEWAY
from stackctl.config.stack import Stack
from stackctl.console import cmd
from stackctl.errors import StackError, UsageError
from stackctl.fleet.stackconfig import GATEWAY_DIR
from stackctl.foundry import discovery
from stackctl.foundry.door import follows

CONFIG = GATEWAY_DIR / "config.edge.yml"
DEFAULT_PORT = GATEWAY.container_port


@dataclass(frozen=True)
class EdgePlan:
    listen: str
    upstream_url: str          # Foundry as this machine sees it (root + /catalogs/local)
    follow: bool
    models: tuple[str, ...]
    argv: list[str]
    env: dict[str, str] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.listen}"


_VIRTUAL = ("docker", "br-", "veth", "virbr", "cni", "flannel", "vEthernet")


def local_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (what ``--listen`` may name),
    LAN-looking interfaces first, container bridges last."""
    out: dict[str, bool] = {}
    for nic, addrs in psutil.net_if_addrs().items():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                out.setdefault(a.address, nic.startswith(_VIRTUAL))
    return sorted(out, key=lambda ip: (out[ip], tuple(int(p) for p in ip.split("."))))


def check_listen(listen: str | None, addresses: list[str]) -> str:
    example = f"{addresses[0] if addresses else '192.168.1.20'}:{DEFAULT_PORT}"
    if not listen:
        raise UsageError(f"say where the edge gateway listens: `{cmd(f'edge --listen {example}')}` "
                         "(this machine's LAN address; "
                         + (f"it has {', '.join(addresses)})" if addresses else "it has none but loopback)"))
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {listen!r} is not IP:PORT; e.g. `{cmd(f'edge --listen {example}')}`")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise UsageError(f"--listen {listen!r}: {host!r} is not an IP address; use one of this "
                         f"machine's: {', '.join(addresses) or '127.0.0.1'}") from None
    if ip.is_unspecified:
        raise UsageError(f"--listen {listen!r} would listen on every network this machine joins; "
                         f"name one address, e.g. `{cmd(f'edge --listen {example}')}`")
    if not ip.is_loopback and str(ip) not in addresses:
        raise UsageError(f"--listen {listen!r}: {ip} is not an address of this machine; "
                         f"use one of: {', '.join(addresses) or '127.0.0.1'}")
    return listen


def plan(stack: Stack, listen: str | None, addresses: list[str] | None = None) -> EdgePlan:
    """Where to listen, which Foundry to front, the gateway's command and environment."""
    listen = check_listen(listen, local_addresses() if addresses is None else addresses)
    key = stack.env.get(EDGE_KEY, "")
    if not key:
        raise StackError(f"{EDGE_KEY} is empty in {stack.env_file}; delete the line and run "
                         f"`{cmd('edge --listen ' + listen)}` again to generate one", exit_code=2)
    d = discovery.discover(stack.env, stack.state_dir)
    if not d.found or not d.chat_base_url:
        raise StackError(d.reason or "Foundry Local not found", exit_code=2)
    upstream = d.chat_base_url.removesuffix("/v1")
    follow = follows(d.source or "")
    env = {**os.environ, "EDGE_API_KEY": key, "GATEWAY_UPSTREAM_URL": upstream,
           "GATEWAY_UPSTREAM_FOLLOW": "true" if follow else "false"}
    argv = [sys.executable, "-m", "foundry_gateway", "--config", str(CONFIG),
            "--listen-address", listen]
    return EdgePlan(listen, upstream, follow, tuple(d.chat_models), argv, env)


def snippet(p: EdgePlan, name: str) -> list[str]:
    """What the stack's machine adds: an upstream in its fleet file, the key in its .env."""
    var = f"EDGE_{''.join(ch if ch.isalnum() else '_' for ch in name).upper()}_KEY"
    return [f"  - {{name: {name}, url: \"{p.url}\", api_key_env: {var}}}",
            f"{var}={p.env['EDGE_API_KEY']}"]


def run(p: EdgePlan) -> None:  # pragma: no cover - replaces the process (tested as a process)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(p.argv[0], p.argv, p.env)


def host_name() -> str:
    name = socket.gethostname().split(".")[0] or "host"
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name).lower()

