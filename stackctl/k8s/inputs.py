"""What the user asks a render for, checked before anything is built or written.

A namespace must be a DNS-1123 label. Foundry upstreams are plain-HTTP service
roots outside the cluster (Foundry Local serves HTTP; the gateway adds /v1):
either IP addresses, which become one selector-less Service with a manual
EndpointSlice (kube-proxy spreads connections over them), or exactly one DNS
name, which becomes an ExternalName Service. Every upstream sits behind the one
Service, so they share a port and a path.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from stackctl.errors import UsageError

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
EXAMPLE = "http://10.0.0.5:52180"


@dataclass(frozen=True)
class Upstream:
    """Foundry Local hosts outside the cluster, as one in-cluster Service sees them."""

    hosts: tuple[str, ...]   # IP addresses, or exactly one DNS name
    port: int
    path: str                # "" or e.g. /catalogs/local (no trailing slash)
    address_type: str        # IPv4 | IPv6 | FQDN (FQDN: an ExternalName Service)

    @property
    def external_name(self) -> bool:
        return self.address_type == "FQDN"


def check_namespace(namespace: str | None) -> str:
    ns = (namespace or "").strip()
    if not ns:
        raise UsageError("no namespace given — pass --namespace NAME, e.g. --namespace foundry-chat")
    if len(ns) > 63 or not _LABEL.match(ns):
        raise UsageError(f"namespace {ns!r} is not a valid Kubernetes name (lower-case letters, digits and '-', "
                         "starting and ending with a letter or digit, at most 63) — e.g. --namespace foundry-chat")
    return ns


def parse_upstreams(raw: str | list[str] | tuple[str, ...] | None) -> Upstream:
    """``--upstream URL[,URL..]`` (repeatable) → one Upstream, or a UsageError naming the bad URL."""
    items = [raw] if isinstance(raw, str) else list(raw or ())
    urls = [u.strip() for item in items for u in item.split(",") if u.strip()]
    if not urls:
        raise UsageError(f"no Foundry upstream given — pass --upstream URL[,URL..], e.g. --upstream {EXAMPLE}")
    parsed = [_one(u) for u in urls]
    hosts = tuple(h for h, _, _, _ in parsed)
    if len(set(hosts)) != len(hosts):
        dup = next(h for h in hosts if hosts.count(h) > 1)
        raise UsageError(f"upstream host {dup} is listed twice — list each Foundry host once")
    ports, paths, kinds = {p for _, p, _, _ in parsed}, {p for _, _, p, _ in parsed}, {k for *_, k in parsed}
    if len(ports) > 1 or len(paths) > 1:
        raise UsageError("upstreams differ in port or path (" + ", ".join(urls) + ") — they sit behind one "
                         "Service: serve Foundry on the same port and path on every host")
    if len(kinds) > 1:
        raise UsageError("upstreams mix " + " and ".join(sorted(kinds)) + " addresses — give all IPv4, all IPv6, "
                         "or one DNS name")
    kind = kinds.pop()
    if kind == "FQDN" and len(hosts) > 1:
        raise UsageError(f"{len(hosts)} DNS names given — an ExternalName Service names one host; give several "
                         "hosts as IP addresses instead (a manual EndpointSlice)")
    return Upstream(hosts, ports.pop(), paths.pop(), kind)


def _one(url: str) -> tuple[str, int, str, str]:
    fix = f"write it like {EXAMPLE} (Foundry's service root, plain HTTP)"
    if "://" not in url:
        raise UsageError(f"upstream {url!r} has no scheme — {fix}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"upstream {url!r} is not a URL ({exc}) — {fix}") from None
    if parts.scheme != "http":
        raise UsageError(f"upstream {url!r} is not http:// — {fix}; the gateway speaks plain HTTP to Foundry")
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError(f"upstream {url!r} needs a host and nothing but a path after it — {fix}")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        raise UsageError(f"upstream {url!r} ends in /v1 — give Foundry's root (+ /catalogs/local); "
                         "the gateway adds /v1")
    host = parts.hostname
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host) or "." not in host:
            raise UsageError(f"upstream host {host!r} is neither an IP address nor a fully qualified DNS name "
                             f"— {fix}") from None
        return host, port or 80, path, "FQDN"
    if ip.is_loopback or ip.is_unspecified or ip.is_multicast or ip.is_link_local:
        raise UsageError(f"upstream {url!r} is a {('loopback' if ip.is_loopback else 'non-routable')} address "
                         "a pod cannot reach — give the Foundry host's address on a network the cluster "
                         "reaches (Foundry binds loopback by default: see README, Kubernetes)")
    return str(ip), port or 80, path, f"IPv{ip.version}"
