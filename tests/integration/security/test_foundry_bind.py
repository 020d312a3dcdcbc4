"""The embedded Foundry server's unauthenticated API (POST /shutdown!) listens only
on loopback and the Docker bridge gateway — never on the host's other addresses.

Read from the kernel's socket table (/proc/net/tcp{,6}) rather than by
connecting, so the check is exact and sends no traffic beyond loopback.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

from stackctl.foundry import bridge


def listening(port: int) -> set[str]:
    """Addresses with a LISTEN socket on ``port``."""
    out = set()
    for table, fam in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        p = Path(table)
        if not p.exists():
            continue
        for line in p.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(addr_hex)
            if fam == socket.AF_INET:
                out.add(socket.inet_ntop(fam, struct.pack("<I", struct.unpack(">I", raw)[0])))
            else:
                words = struct.unpack(">4I", raw)
                out.add(socket.inet_ntop(fam, struct.pack("<4I", *words)))
    return out


def test_listens_on_loopback_and_bridge_gateway_only(foundry_server):
    addrs = listening(foundry_server.port)
    gateway = bridge.gateway_ip()
    assert "127.0.0.1" in addrs
    allowed = {"127.0.0.1", "::1"} | ({gateway} if gateway else set())
    assert addrs <= allowed, f"Foundry listens on {addrs - allowed} too"
    assert not any(ipaddress.ip_address(a).is_unspecified for a in addrs)
    if gateway:  # Linux Docker Engine: containers reach the host only here
        assert gateway in addrs
