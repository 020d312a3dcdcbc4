"""`edge`: this machine's Foundry Local offered to another machine's stack."""

from __future__ import annotations

from invoke import Collection, task

from stackctl.cli import R, edge


@task(name="edge", help={
    "listen": "IP:PORT to serve on: this machine's LAN address (e.g. 192.168.1.20:9180).",
    "name": "The name the other stack gives this host (default: this machine's host name).",
})
@edge
def edge_gateway(c, listen=None, name=None):
    """Offer this machine's Foundry Local to another machine's stack: the gateway on a LAN
    address, with a key, in front of the loopback-only Foundry (runs until Ctrl-C)."""
    from stackctl.config.stack import ensure_stack
    from stackctl.fleet import edge as edge_mod

    stack, _ = ensure_stack()  # generates EDGE_API_KEY into .env (0600) the first time
    p = edge_mod.plan(stack, listen)
    R.ok(f"edge gateway on {p.url} → Foundry Local at {p.upstream_url}"
         + (f" (models: {', '.join(p.models)})" if p.models else " (no chat model loaded yet)"))
    lines = edge_mod.snippet(p, name or edge_mod.host_name())
    R.info("  On the stack's machine, add this host to the fleet file's upstreams:")
    R.info(f"  {lines[0]}")
    R.info("  and its key to that machine's .env:")
    R.info(f"    {lines[1]}")
    R.info("  Foundry stays on loopback; only the gateway's five doors pass, with the key. "
           "Ctrl-C stops it.")
    edge_mod.run(p)


ns = Collection(edge_gateway)
