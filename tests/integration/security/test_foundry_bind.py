"""The embedded Foundry server's unauthenticated API (POST /shutdown!) listens only
on loopback — not on the Docker bridge address nor any other (the gateway is the door).

Read from the kernel's socket table (/proc/net/tcp{,6}) rather than by
connecting, so the check is exact and sends no traffic beyond loopback.
"""

from __future__ import annotations

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


def test_listens_on_loopback_only_not_the_bridge(foundry_server):
    # The gateway is the one door for containers (issue 15): the embedded server no
    # longer binds the Docker bridge address, where any container could POST /shutdown.
    addrs = listening(foundry_server.port)
    assert addrs, "Foundry does not listen at all"
    assert addrs <= {"127.0.0.1", "::1"}, f"Foundry listens on {addrs - {'127.0.0.1', '::1'}} too"
    gateway = bridge.gateway_ip()
    assert gateway is None or gateway not in addrs
