"""What the stack's gateway says about its upstreams, for `status`, `doctor` and `smoke`.

The gateway answers ``GET /gateway/upstreams`` (key required): each upstream's
name, kind, origin, whether it is in rotation (and why not), its chat models and
in-flight requests, plus the routes. With one upstream (no fleet file) the
commands say nothing more than before; with a fleet file they show each host and
smoke sends one short chat pinned to each upstream in rotation (the request
header ``X-Foundry-Upstream``), so a host that cannot chat is named.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from stackctl.checks.runner import Result, fail, ok, warn
from stackctl.config.settings import GATEWAY, GATEWAY_KEY
from stackctl.config.stack import Stack
from stackctl.console import cmd
from stackctl.fleet.stackconfig import is_fleet

PATH = "/gateway/upstreams"
PIN = "X-Foundry-Upstream"


def gateway_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.env[GATEWAY.port_key]}"


def fetch(stack: Stack, http: httpx.Client) -> dict:
    """The gateway's report; raises httpx.HTTPError when it cannot be asked."""
    r = http.get(gateway_url(stack) + PATH, timeout=5,
                 headers={"Authorization": f"Bearer {stack.env[GATEWAY_KEY]}"})
    r.raise_for_status()
    return r.json()


def lines(report: dict) -> list[str]:
    """One line per upstream (status): name, kind, state, models."""
    ups = report.get("upstreams") or []
    width = max((len(u["name"]) for u in ups), default=0)
    out = [f"upstreams ({sum(u['up'] for u in ups)} of {len(ups)} in rotation):"]
    for u in ups:
        state = "in rotation" if u["up"] else f"OUT ({u.get('reason') or 'failing'})"
        models = ", ".join(u["models"]) or "no chat model loaded"
        busy = f", {u['in_flight']} in flight" if u.get("in_flight") else ""
        out.append(f"  {u['name']:<{width}}  {u['kind']:<5}  {state}{busy}  {u['url']}  {models}")
    for r in report.get("routes") or ():
        out.append(f"  route {r['name']} → {' → '.join(r['models'])}"
                   + ("  (local only)" if r["local_only"] else ""))
    if report.get("cloud_fallback"):
        out.append(f"  cloud fallback for local models: {report['cloud_fallback']}")
    return out


def status_lines(stack: Stack, http: httpx.Client | None = None) -> list[str]:
    """The fleet section of `status` (nothing without a fleet file)."""
    if not is_fleet(stack):
        return []
    own = http is None
    http = http or httpx.Client(trust_env=False)
    try:
        return lines(fetch(stack, http))
    except (httpx.HTTPError, ValueError) as err:
        return [f"upstreams: the gateway cannot be asked ({type(err).__name__}); "
                f"`{cmd('logs gateway')}`"]
    finally:
        if own:
            http.close()


def check_upstreams(ctx) -> Iterator[Result]:
    """doctor and smoke: each upstream in rotation (a warning per host out while others
    serve; a failure when no local host serves). Nothing without a fleet file."""
    if not is_fleet(ctx.stack):
        return
    try:
        report = fetch(ctx.stack, ctx.http)
    except (httpx.HTTPError, ValueError) as err:
        yield fail("upstreams", f"the gateway cannot say ({type(err).__name__})",
                   f"`{cmd('logs gateway')}`; then `{cmd('up')}`")
        return
    ups = report.get("upstreams") or []
    for u in ups:
        where = f"{u['kind']} {u['url']}"
        if u["up"]:
            yield ok(f"upstream {u['name']}", f"{where} in rotation; models: "
                     + (", ".join(u["models"]) or "none loaded"))
        else:
            yield warn(f"upstream {u['name']}", f"{where} out of rotation ({u.get('reason')})",
                       f"check Foundry Local and `{cmd('edge')}` on that host (README, Several "
                       "machines and a cloud); it rejoins by itself")
    if ups and not any(u["up"] for u in ups if u["kind"] == "local"):
        yield fail("upstreams", "no local upstream is in rotation: local chats fail",
                   f"start Foundry Local on one host; `{cmd('status')}` shows each")


def check_pinned_chats(ctx) -> Iterator[Result]:
    """smoke: one short chat through the gateway pinned to each upstream in rotation."""
    if not is_fleet(ctx.stack):
        return
    try:
        report = fetch(ctx.stack, ctx.http)
    except (httpx.HTTPError, ValueError):
        return  # check_upstreams has said so
    for u in report.get("upstreams") or ():
        if not u["up"] or not u["models"]:
            continue
        model = u["models"][0]
        try:
            r = ctx.http.post(gateway_url(ctx.stack) + "/v1/chat/completions", timeout=120,
                              headers={"Authorization": f"Bearer {ctx.stack.env[GATEWAY_KEY]}",
                                       PIN: u["name"]},
                              json={"model": model, "max_tokens": 4,
                                    "messages": [{"role": "user", "content": "Say hi"}]})
        except httpx.HTTPError as err:
            yield fail(f"chat via {u['name']}", f"{type(err).__name__}", f"`{cmd('logs gateway')}`")
            continue
        if r.status_code == 200 and r.headers.get(PIN.lower()) == u["name"]:
            yield ok(f"chat via {u['name']}", f"{model} answered")
        else:
            msg = (r.json().get("error") or {}).get("message", "") if r.headers.get(
                "content-type", "").startswith("application/json") else r.text[:120]
            yield fail(f"chat via {u['name']}", f"{model}: HTTP {r.status_code} {msg}".strip(),
                       f"`{cmd('logs gateway')}`; check that host's Foundry Local")
