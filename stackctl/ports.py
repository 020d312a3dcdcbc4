"""Host ports: whether an address:port can be bound, and which of the stack's
published ports another program holds.

One bind test for every caller (`up`, `doctor`, the embedded Foundry server), with
the listeners' own semantics: a TIME_WAIT leftover is not "in use" (SO_REUSEADDR)."""

from __future__ import annotations

import errno
import socket

from stackctl.config.settings import SERVICES
from stackctl.config.stack import Stack


def bind_error(host: str, port: int) -> int | None:
    """The errno binding host:port fails with, or None when it is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as err:
            return err.errno or errno.EADDRNOTAVAIL
    return None


def port_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port (we try to bind it)."""
    return bind_error(host, port) is None


def own_ports(stack: Stack, published: set[int], running: set[str] | dict) -> set[int]:
    """The host ports the stack's own containers hold: what they publish, plus the port
    of each running host-network service (the gateway publishes nothing)."""
    return set(published) | {int(stack.env[s.port_key]) for s in SERVICES
                             if s.host_network and s.name in running}


def busy_ports(stack: Stack, own_ports: set[int]) -> list[tuple[int, str]]:
    """(port, .env key) of each enabled service's host port that another program holds;
    ports the stack's own containers publish are not busy. An internal service's port is
    not its own (the keeper's is the embedded Foundry's, which `foundry.serve` checks)."""
    busy = []
    for svc in SERVICES:
        if svc.name not in stack.services or svc.internal:
            continue
        port = int(stack.env[svc.port_key])
        if port not in own_ports and not port_free(stack.bind, port):
            busy.append((port, svc.port_key))
    return busy
