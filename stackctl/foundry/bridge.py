"""Find the Docker bridge gateway IP, the address containers reach the host on.

On Linux Docker Engine ``host.docker.internal:host-gateway`` resolves to the
bridge gateway (usually 172.17.0.1), so a host server bound only to 127.0.0.1
is unreachable from containers. Docker Desktop (macOS/Windows) forwards to the
host's loopback instead, so there is nothing to find there.

Invariant: ``gateway_ip`` never raises; no Docker means None (serve loopback only).
Parsing is pure; the interface lookup and the docker CLI are injected seams.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
import sys
from collections.abc import Callable

_SIOCGIFADDR = 0x8915


def interface_ipv4(name: str) -> str | None:
    """IPv4 address of a network interface (Linux ioctl), or None."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def parse_network_inspect(text: str) -> str | None:
    """Gateway IPv4 from ``docker network inspect bridge`` JSON, or None."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    networks = data if isinstance(data, list) else [data]
    for net in networks:
        for cfg in ((net or {}).get("IPAM") or {}).get("Config") or []:
            gateway = (cfg or {}).get("Gateway", "")
            if _is_ipv4(gateway):
                return gateway
    return None


def gateway_ip(
    *,
    platform: str = sys.platform,
    iface: Callable[[str], str | None] = interface_ipv4,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> str | None:
    """The Docker bridge gateway IPv4 on Linux, or None (not Linux, or no Docker)."""
    if not platform.startswith("linux"):
        return None
    ip = iface("docker0")
    if ip and _is_ipv4(ip):
        return ip
    try:
        done = run(
            ["docker", "network", "inspect", "bridge"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_network_inspect(done.stdout) if done.returncode == 0 else None


def _is_ipv4(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
    except ValueError:
        return False
