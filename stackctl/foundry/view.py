"""The stack's view of Foundry Local: discovery plus the container view of it.

``ensure`` is what `invoke up` runs: find Foundry Local; if nothing is found and
the user did not pin FOUNDRY_LOCAL_ENDPOINT, serve the embedded one (the real
runtime through foundry-local-sdk) and find that.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from stackctl.config.settings import FOUNDRY_PORT_KEY
from stackctl.config.stack import Stack
from stackctl.console import Reporter
from stackctl.errors import StackError
from stackctl.foundry import discovery
from stackctl.foundry.urls import container_url, root_url


@dataclass(frozen=True)
class FoundryView:
    source: str
    generation: str
    root_url: str                  # as the host sees it
    openai_url: str                # chat base, as the host sees it
    chat_models: tuple[str, ...]
    container_base_url: str        # root (+ /catalogs/local) as containers see it: the exporter's target
    container_openai_url: str
    binds_everywhere: bool = False

    def managed_env(self) -> dict[str, str]:
        return {"FOUNDRY_CONTAINER_BASE_URL": self.container_base_url,
                "FOUNDRY_CONTAINER_OPENAI_URL": self.container_openai_url}


def view_of(d: discovery.Discovery) -> FoundryView:
    assert d.found and d.root_url and d.chat_base_url
    root = root_url(d.root_url)
    return FoundryView(
        source=d.source or "?", generation=d.generation or "?", root_url=root,
        openai_url=d.chat_base_url, chat_models=tuple(d.chat_models),
        container_base_url=container_url(d.chat_base_url).removesuffix("/v1"),
        container_openai_url=container_url(d.chat_base_url),
        binds_everywhere=urlsplit(root).hostname in ("0.0.0.0", "::"),
    )


def current(stack: Stack) -> tuple[FoundryView | None, str | None]:
    d = discovery.discover(stack.env, stack.state_dir)
    if not d.found:
        return None, d.reason
    view = view_of(d)
    if d.source == "embedded" and embedded_binds_everywhere(stack):
        view = replace(view, binds_everywhere=True)
    return view, None


def embedded_binds_everywhere(stack: Stack) -> bool:
    """True if the stack's own Foundry server listens on all addresses (--host 0.0.0.0)."""
    from stackctl.foundry import state as state_mod
    from stackctl.foundry.paths import FoundryPaths

    st = state_mod.read(FoundryPaths(stack.state_dir))
    return bool(st) and any(urlsplit(u).hostname in ("0.0.0.0", "::") for u in st.urls)


def ensure(stack: Stack, *, model: str | None, model_path: str | None,
           reporter: Reporter) -> tuple[FoundryView, bool]:
    """(view, started_embedded). Serves the embedded Foundry only when nothing is found
    and FOUNDRY_LOCAL_ENDPOINT is not pinned."""
    d = discovery.discover(stack.env, stack.state_dir)
    if d.found:
        view = view_of(d)
        reporter.ok(f"Foundry Local found ({view.source}): {view.root_url}")
        if model or model_path:
            reporter.warn("--model/--model-path ignored: Foundry Local is already running "
                          "(`invoke foundry.stop` first to serve another model)")
        return view, False
    if stack.env.get("FOUNDRY_LOCAL_ENDPOINT"):
        raise StackError(f"FOUNDRY_LOCAL_ENDPOINT={stack.env['FOUNDRY_LOCAL_ENDPOINT']} does not answer: "
                         f"{d.reason} — start Foundry Local there, or clear the setting in .env to let "
                         "the stack serve its own", exit_code=1)
    reporter.step(f"{(d.reason or 'Foundry Local not found').split(' — ')[0]}; "
                  "starting the embedded server")
    from stackctl.foundry import lifecycle

    if not model and not model_path:
        model_path = stack.env.get("FOUNDRY_MODEL_PATH") or None
        model = None if model_path else stack.env.get("FOUNDRY_MODEL")
    st = lifecycle.serve(stack.state_dir, port=int(stack.env[FOUNDRY_PORT_KEY]), model=model,
                         model_path=model_path, on_event=_event_printer(reporter))
    reporter.ok(f"embedded Foundry Local serving {st.model_id} (pid {st.pid}); "
                "`invoke down` stops it with the stack")
    d = discovery.discover(stack.env, stack.state_dir)
    if not d.found:
        raise StackError(f"the embedded Foundry server started but is not discoverable: {d.reason}")
    return view_of(d), True


def stop_embedded(stack: Stack) -> None:
    """Stop the embedded server `up` started, when a later step of `up` failed."""
    from contextlib import suppress

    from stackctl.foundry import lifecycle

    with suppress(StackError):
        lifecycle.stop(stack.state_dir)


def _event_printer(reporter: Reporter):
    """Start-up progress as lines: each stage once, downloads every 10 %."""
    from stackctl.foundry.events import PROGRESS, STAGE

    last = {"stage": "", "pct": -10.0}

    def on_event(event) -> None:
        if event.kind == STAGE and event.message != last["stage"]:
            last["stage"] = event.message
            reporter.info(f"  {event.message}")
        elif event.kind == PROGRESS and event.percent >= last["pct"] + 10:
            last["pct"] = event.percent
            reporter.info(f"  download {event.message}: {event.percent:.0f}%")

    return on_event


def unreachable_fix(view: FoundryView) -> str:
    host = urlsplit(view.root_url).hostname
    if sys.platform.startswith("linux") and host in ("127.0.0.1", "localhost", "::1"):
        return ("on Linux, containers reach the host through the Docker bridge gateway, not "
                f"{host}: bind Foundry Local to the bridge address too (the embedded "
                "`invoke foundry.serve` does), or set FOUNDRY_LOCAL_ENDPOINT to an address "
                "containers can reach; check a firewall is not dropping docker0 traffic")
    return ("make Foundry Local listen on an address Docker Desktop forwards "
            "(host.docker.internal), and check the firewall")


def unreachable_message(view: FoundryView, detail: str) -> str:
    return (f"Foundry Local at {view.root_url} is not reachable from containers "
            f"({view.container_openai_url}: {detail}) — {unreachable_fix(view)}")
