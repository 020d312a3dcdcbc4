"""`k8s-render`: the stack as Kubernetes manifests + open-webui chart values (stackctl/k8s)."""

from __future__ import annotations

from invoke import Collection, task

from stackctl.cli import R, edge
from stackctl.console import cmd
from stackctl.errors import UsageError


@task(iterable=["upstream"], help={
    "out": "Folder to render into (new or empty; --force replaces a previous render).",
    "namespace": "Kubernetes namespace to deploy into, e.g. foundry-chat.",
    "upstream": "Foundry Local service root(s) outside the cluster, http://HOST:PORT[/catalogs/local]; "
                "comma-separated or repeated. IPs: a manual EndpointSlice; one DNS name: ExternalName.",
    "force": "Replace OUT when it holds a previous render.",
    "registry": "Registry prefix for the images the stack builds (exporter, gateway), e.g. registry.example.com/team.",
    "gateway-image": "The gateway's image (default: the one pinned in settings, when pinned).",
    "per-user": "Open WebUI forwards user names so the gateway counts per user (like GATEWAY_PER_USER=true).",
})
@edge
def k8s_render(c, out=None, namespace=None, upstream=None, force=False, registry=None, gateway_image=None,
               per_user=False):
    """Render the stack for Kubernetes (Helm values + manifests) from the compose stack's own files."""
    from stackctl.k8s import k8s_render as do_render

    if not out:
        raise UsageError("no output folder — pass --out DIR, e.g. "
                         f"`{cmd('k8s-render --out k8s --namespace foundry-chat --upstream http://10.0.0.5:52180')}`")
    res = do_render(out, namespace, upstream, force=force, registry=registry or "",
                    gateway_image=gateway_image, per_user=per_user, command=cmd("k8s-render"))
    up = res.upstream
    kind = "ExternalName" if up.external_name else f"manual EndpointSlice ({len(up.hosts)} host(s))"
    R.ok(f"rendered {len(res.files)} files into {res.out} — Foundry upstream via {kind}")
    R.info("  Deploy (needs kube-prometheus-stack in the cluster):")
    for line in res.commands:
        R.info(f"    {line}")


ns = Collection(k8s_render)
