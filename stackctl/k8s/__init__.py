"""The Kubernetes path: the stack rendered for the official open-webui chart and
kube-prometheus-stack, from the same files compose runs (one source, no drift).

inputs (namespace, Foundry upstreams: checked first) → sources (the only reads)
→ manifests/helm (pure builders) → render (file tree in memory, written at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stackctl.config.stack import ROOT
from stackctl.k8s import render as _render
from stackctl.k8s.inputs import Upstream, check_namespace, parse_upstreams
from stackctl.k8s.render import commands, write_tree
from stackctl.k8s.sources import Sources, read_sources

__all__ = ["Rendered", "Sources", "Upstream", "check_namespace", "commands", "k8s_render",
           "parse_upstreams", "read_sources", "write_tree"]


@dataclass(frozen=True)
class Rendered:
    out: Path
    files: tuple[str, ...]
    upstream: Upstream
    commands: tuple[str, ...]


def k8s_render(out: str | Path, namespace: str | None, upstreams: str | list[str] | None, *,
               force: bool = False, gateway_image: str | None = None, registry: str = "", per_user: bool = False,
               command: str = "k8s-render", root: Path = ROOT) -> Rendered:
    """Check the inputs, read the sources, render and write OUT; nothing is written on any error."""
    ns = check_namespace(namespace)
    up = parse_upstreams(upstreams)
    src = read_sources(root, gateway_image=gateway_image, registry=registry)
    files = _render.render(src, ns, up, command, per_user=per_user)
    write_tree(files, Path(out), force=force)
    return Rendered(Path(out), tuple(files), up, tuple(commands(src, ns, str(out))))
