"""The stack's view of Foundry Local: discovery plus the container view of it.

``ensure`` is what `invoke up` runs: find Foundry Local; if nothing is found and
the user did not pin FOUNDRY_LOCAL_ENDPOINT, serve the embedded one (the real
runtime through foundry-local-sdk) and find that.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from stackctl.config import envfile
from stackctl.config.settings import FOUNDRY_PORT_KEY
from stackctl.config.stack import Stack, private_dir
from stackctl.console import Reporter, cmd
from stackctl.errors import StackError
from stackctl.foundry import discovery, door
from stackctl.foundry.model_spec import resolve
from stackctl.foundry.urls import root_url


@dataclass(frozen=True)
class FoundryView:
    source: str
    generation: str
    root_url: str                  # as the host sees it
    openai_url: str                # chat base, as the host sees it
    chat_models: tuple[str, ...]
    upstream_url: str              # root (+ /catalogs/local) as the gateway sees it (the host)
    container_base_url: str        # the gateway as containers see it: the exporter's target
    container_openai_url: str      # the gateway's OpenAI base for containers: Open WebUI's connection
    binds_everywhere: bool = False


def view_of(d: discovery.Discovery, stack: Stack) -> FoundryView:
    assert d.found and d.root_url and d.chat_base_url
    root = root_url(d.root_url)
    return FoundryView(
        source=d.source or "?", generation=d.generation or "?", root_url=root,
        openai_url=d.chat_base_url, chat_models=tuple(d.chat_models),
        upstream_url=d.chat_base_url.removesuffix("/v1"),
        container_base_url=door.container_root(stack),
        container_openai_url=door.container_openai_url(stack),
        binds_everywhere=urlsplit(root).hostname in ("0.0.0.0", "::"),
    )


def current(stack: Stack) -> tuple[FoundryView | None, str | None]:
    d = discovery.discover(stack.env, stack.state_dir)
    if not d.found:
        return None, embedded_problem(stack, d) or d.reason
    view = view_of(d, stack)
    if d.source == "embedded" and embedded_binds_everywhere(stack):
        view = replace(view, binds_everywhere=True)
    return view, None


OWN_SERVER = "the stack's own Foundry Local server"  # how a reason about it starts


def not_found_detail(reason: str | None, lead: str = "Foundry Local not found") -> str:
    """The detail line of a failed Foundry check: an embedded server's death speaks for
    itself; anything else is "not found"."""
    reason = reason or "no reason given"
    return reason if reason.startswith(OWN_SERVER) else f"{lead}: {reason}"


def embedded_problem(stack: Stack, d: discovery.Discovery) -> str | None:
    """Why the stack's own embedded server is not serving, when it should be: its
    process is alive but not answering, or its last run died (the log's last session
    reached "ready" and never logged a stop). None when that is not the story."""
    if stack.env.get("FOUNDRY_LOCAL_ENDPOINT"):
        return None
    from stackctl.foundry import state as state_mod
    from stackctl.foundry.paths import FoundryPaths

    paths = FoundryPaths(stack.state_dir)
    session = last_session(paths.log_file)
    tail = "; ".join(line[-160:] for line in session.lines[-3:]) or "(empty)"
    live = state_mod.read(paths) if paths.state_file.exists() else None
    if live is not None and any(t.startswith("embedded:") and "not answering" in t for t in d.tried):
        return (f"{OWN_SERVER} (pid {live.pid}) is running but not answering at {live.root_url}; "
                f"last lines of its log: {tail}; log: {paths.log_file} — "
                f"`{cmd('foundry.stop')}`, then `{cmd('up')}` restarts it")
    if live is None and session.pid and session.ready and not session.stopped:
        return (f"{OWN_SERVER} (pid {session.pid}) died ({session.how}); last lines of its log: "
                f"{tail}; log: {paths.log_file} — `{cmd('up')}` restarts it")
    return None


@dataclass(frozen=True)
class LogSession:
    """The last `foundry.serve` run as its log tells it (pure parse of server.log)."""

    pid: int = 0
    ready: bool = False
    stopped: bool = False  # it logged a stop (signal received, clean exit)
    how: str = ""
    lines: tuple[str, ...] = ()


def last_session(log_file) -> LogSession:
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return LogSession()
    session = text.rsplit("\n=== foundry.serve ", 1)[-1].splitlines()[1:]
    lines = tuple(ln.strip() for ln in session if ln.strip())
    # The last server of the session: its supervisor may have restarted it after a crash.
    pid = next((int(m.group(1)) for ln in reversed(lines) if (m := re.search(r"foundry-server\[(\d+)\]", ln))), 0)
    mine = [ln for ln in lines if f"foundry-server[{pid}]" in ln]
    ready = any(" ready " in f" {ln} " for ln in mine)
    stopped = any(re.search(r"\] (stopping|stopped|received SIG\w+)$", ln) for ln in mine)
    errors = [ln.split("] ", 1)[-1] for ln in lines if " ERROR " in ln or " CRITICAL " in ln
              or ln.startswith("Traceback") or "shut down from outside" in ln]
    how = (f"its last error: {errors[-1][:160]}" if errors else
           "no exit status recorded: killed (a signal such as SIGKILL, or out of memory) or crashed")
    return LogSession(pid, ready, stopped, how, lines)


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
        view = view_of(d, stack)
        reporter.ok(f"Foundry Local found ({view.source}): {view.root_url}")
        if model or model_path:
            remember_model(stack, model, model_path, reporter)
            reporter.warn("--model/--model-path not served now: Foundry Local is already running "
                          f"(`{cmd('foundry.stop')}` first to serve it now)")
        return view, False
    if stack.env.get("FOUNDRY_LOCAL_ENDPOINT"):
        raise StackError(f"FOUNDRY_LOCAL_ENDPOINT={stack.env['FOUNDRY_LOCAL_ENDPOINT']} does not answer: "
                         f"{d.reason} — start Foundry Local there, or clear the setting in .env to let "
                         "the stack serve its own", exit_code=1)
    reporter.step(f"{(d.reason or 'Foundry Local not found').split(' — ')[0]}; "
                  "starting the embedded server")
    from stackctl.foundry import lifecycle

    given = (model, model_path)
    if not model and not model_path:
        model, model_path = configured_model(stack.env)
    st = lifecycle.serve(stack.state_dir, port=int(stack.env[FOUNDRY_PORT_KEY]), model=model,
                         model_path=model_path, on_event=_event_printer(reporter), supervise=True)
    remember_model(stack, *given, reporter)
    reporter.ok(f"embedded Foundry Local serving {st.model_id} (pid {st.pid}); "
                f"`{cmd('down')}` stops it with the stack")
    d = discovery.discover(stack.env, stack.state_dir)
    if not d.found:
        raise StackError(f"the embedded Foundry server started but is not discoverable: {d.reason}")
    return view_of(d, stack), True


def keep(stack: Stack, view: FoundryView) -> dict[str, str]:
    """Hand the embedded server to the keeper (stackctl/foundry/keeper.py) and return the
    managed keys its container needs. On Linux, when the stack serves its own Foundry,
    the keep record says what to serve again after a reboot. Elsewhere (Docker Desktop
    runs containers in a VM, away from the host's loopback) there is no keeper: no
    record, and placeholders for the keys compose interpolates anyway."""
    import os

    from stackctl.foundry import keeper
    from stackctl.foundry import state as state_mod
    from stackctl.foundry.paths import FoundryPaths

    if not sys.platform.startswith("linux"):  # no keeper here (Stack.profiles): compose
        return {k: "/unused-off-linux" for k in ("FOUNDRY_KEEPER_STATE_DIR", "FOUNDRY_KEEPER_MODEL_DIR")} \
            | {"FOUNDRY_KEEPER_USER": "0:0"}  # interpolates its keys all the same
    paths = FoundryPaths(stack.state_dir.resolve())
    live = state_mod.read_live(paths)[0] if view.source == "embedded" else None
    if live is not None:
        keeper.remember(paths, live)
    else:  # the stack uses another Foundry now: nothing of its own to serve after a reboot
        keeper.forget(paths)
    if live is not None and live.model_path:
        model_dir = live.model_path
    else:  # compose mounts something there: an empty folder of its own
        model_dir = str(private_dir(paths.root / "no-model"))
    uid, gid = getattr(os, "getuid", lambda: 0)(), getattr(os, "getgid", lambda: 0)()
    return {"FOUNDRY_KEEPER_STATE_DIR": str(paths.state_dir), "FOUNDRY_KEEPER_MODEL_DIR": model_dir,
            "FOUNDRY_KEEPER_USER": f"{uid}:{gid}"}


MODEL_KEYS = ("FOUNDRY_MODEL", "FOUNDRY_MODEL_PATH")


def configured_model(env: dict[str, str]) -> tuple[str | None, str | None]:
    """(model, model_path) from .env: a local folder wins over a catalog alias."""
    model_path = env.get("FOUNDRY_MODEL_PATH") or None
    return (None if model_path else env.get("FOUNDRY_MODEL") or None), model_path


def model_updates(model: str | None, model_path: str | None) -> dict[str, str]:
    """The .env values for a model given on the command line (validated; setting one
    key clears the other, so .env names one model). Pure but for the folder check."""
    spec = resolve(model, model_path)
    return ({"FOUNDRY_MODEL_PATH": spec.path, "FOUNDRY_MODEL": ""} if spec.local
            else {"FOUNDRY_MODEL": spec.alias, "FOUNDRY_MODEL_PATH": ""})


def remember_model(stack: Stack, model: str | None, model_path: str | None,
                   reporter: Reporter) -> dict[str, str]:
    """A model given on the command line (`up`, `foundry.serve`) becomes the stack's
    model: written to .env (atomically, 0600), said in one line, and so used by every
    later command (the one precedence rule of config/stack.py). Returns the updates."""
    if not model and not model_path:
        return {}
    updates = model_updates(model, model_path)
    path = stack.env_file
    merged, _ = envfile.merge(envfile.read(path) if path.exists() else [])
    out = [envfile.assignment(ln.key, updates[ln.key]) if ln.key in updates else ln
           for ln in merged]
    if out != merged or not path.exists():
        envfile.write_atomic(path, envfile.render(out))
        said = ", ".join(f"{k}={v}" for k, v in updates.items() if v)
        cleared = " and ".join(k for k, v in updates.items() if not v)
        reporter.ok(f"remembered {said} in {path} ({cleared} cleared): later commands use this model")
    return updates


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
    if sys.platform.startswith("linux"):
        return (f"`{cmd('status')}` shows whether the gateway runs; `{cmd('logs gateway')}` shows "
                "why not; check a firewall is not dropping traffic from containers to the Docker "
                "bridge address (docker0)")
    return ("the gateway uses host networking: on Docker Desktop turn on Settings > Resources > "
            "Network > Enable host networking (Docker Desktop 4.34 or later), then "
            f"`{cmd('up')}`")


def unreachable_message(view: FoundryView, detail: str) -> str:
    return (f"Foundry Local at {view.root_url} is not reachable from containers through the "
            f"gateway ({view.container_openai_url}: {detail}) — {unreachable_fix(view)}")
