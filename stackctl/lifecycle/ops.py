"""`down / status / logs`: thin compositions over compose and the engine, and the
status table and alert section they print (pure renderings of StatusReport)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from rich.markup import escape
from rich.table import Table

from stackctl.alerting import client as alerting
from stackctl.config.settings import ALERTMANAGER, PROMETHEUS
from stackctl.config.stack import Stack, load_stack
from stackctl.console import cmd
from stackctl.docker import compose as composer
from stackctl.docker import engine
from stackctl.errors import StackError
from stackctl.foundry import view as foundry_link


@dataclass(frozen=True)
class DownResult:
    stack: Stack
    foundry_stopped: int | None  # pid of the embedded Foundry server stopped, if any
    foundry_stale: str = ""  # a stale state file removed instead (never signalled), in words


def down(*, volumes: bool = False, keep_foundry: bool = False) -> DownResult:
    """Stop and remove the containers (data volumes kept unless ``volumes``), and the
    stack's own embedded Foundry server unless ``keep_foundry``. A Foundry Local the
    user runs (app, CLI service, pinned endpoint) is never touched."""
    stack = load_stack()
    engine.client()
    compose = composer.find()
    args = ["down", "--remove-orphans"] + (["--volumes"] if volumes else [])
    composer.run(compose, stack, *args)
    stopped, stale = None, ""
    if not keep_foundry:
        # lazy: the SDK-side modules load only when needed
        from stackctl.foundry import keeper, lifecycle
        from stackctl.foundry.paths import FoundryPaths

        keeper.forget(FoundryPaths(stack.state_dir.resolve()))  # also when nothing runs now
        st = lifecycle.status(stack.state_dir)
        if st.running or lifecycle.supervisor_running(stack.state_dir):
            stopped = lifecycle.stop(stack.state_dir).pid
        elif st.stale is not None:
            stale = st.stale_why or f"pid {st.stale.pid} is gone"
    return DownResult(stack, stopped, stale)


@dataclass(frozen=True)
class StatusReport:
    stack: Stack
    services: dict[str, engine.ServiceState]
    urls: dict[str, str]
    foundry: foundry_link.FoundryView | None
    foundry_reason: str | None
    alerts: alerting.Listing | None = None  # None: not asked
    notes: dict[str, str] = field(default_factory=dict)  # what a service without a URL is doing

    @property
    def healthy(self) -> bool:
        return all(self.services.get(s) and self.services[s].ok for s in self.stack.services) \
            and self.foundry is not None


def status() -> StatusReport:
    stack = load_stack()
    client = engine.client()
    states = engine.services(client, stack.project)
    view, reason = foundry_link.current(stack)
    am = states.get(ALERTMANAGER.name)
    alerts = alerting.listing(stack, running=am is not None and am.state == "running")
    return StatusReport(stack, states, stack.urls, view, reason, alerts, keeper_note(stack, states))


def keeper_note(stack: Stack, states: dict[str, engine.ServiceState]) -> dict[str, str]:
    """The keeper's row says whether it has something to keep (its container looks the same)."""
    from stackctl.config.settings import KEEPER
    from stackctl.foundry import keeper
    from stackctl.foundry.paths import FoundryPaths

    if KEEPER.name not in stack.services:
        return {}
    rec = keeper.read(FoundryPaths(stack.state_dir.resolve()))
    if rec is None:
        return {KEEPER.name: "idle: the stack does not serve its own Foundry Local"}
    running = KEEPER.name in states and states[KEEPER.name].state == "running"
    return {KEEPER.name: f"keeps the embedded Foundry Local on 127.0.0.1:{rec['port']} (serves it again after a reboot)"
            if running else f"not running: nothing would serve the embedded Foundry Local again after a reboot — "
                            f"`{cmd('up')}` starts it"}


def logs(service: str | None = None, *, follow: bool = False, tail: int = 200) -> int:
    stack = load_stack()
    compose = composer.find()
    args = ["logs", "--tail", str(tail)]
    if follow:
        args.append("--follow")
    if service:
        args += composer.services_arg(stack, [service])
    try:
        return composer.run(compose, stack, *args, check=False).returncode
    except KeyboardInterrupt:
        return 0
    except subprocess.SubprocessError as exc:
        raise StackError(f"compose logs failed: {exc}") from None


def status_table(rep: StatusReport) -> Table:
    t = Table(title=f"stack {rep.stack.project}", title_justify="left")
    for col in ("service", "state", "health", "restarts"):
        t.add_column(col)
    # URLs are copied from here: never cut with an ellipsis (fold instead), and wide
    # enough for the longest service URL on an 80-column terminal.
    longest = max((len(u) for u in rep.urls.values()), default=0)
    t.add_column("url", overflow="fold", min_width=min(longest, 40))
    for svc in rep.stack.services:
        s = rep.services.get(svc)
        url = rep.urls.get(svc) or rep.notes.get(svc, "")
        if s is None:
            t.add_row(svc, "[red]absent[/]", "", "", url)
        else:
            color = "green" if s.ok else "red"
            t.add_row(svc, f"[{color}]{s.state}[/]", s.health, str(s.restarts), url)
    if rep.foundry:
        f = rep.foundry
        t.add_row("foundry (host)", "[green]serving[/]", f.generation, "",
                  escape(f"{f.root_url}  models: {', '.join(f.chat_models) or 'none loaded'}"))
    else:
        why = rep.foundry_reason or ""
        label = ("died" if " died (" in why else "not answering") if why.startswith(foundry_link.OWN_SERVER) \
            else "not found"
        t.add_row("foundry (host)", f"[red]{label}[/]", "", "",
                  escape(rep.foundry_reason or ""))
    return t


def alert_section(rep: StatusReport) -> list[str]:
    """The lines under the status table: the alerts firing as `alerts` prints them
    (one line each, its runbook under it), "no alerts firing", or one line saying
    why they are not known. Alertmanager's answer beside a Prometheus that is not
    healthy could be a false all-clear (no rule evaluated): said on a line of its own.
    Pure."""
    if rep.alerts is None:
        return []
    if rep.alerts.unavailable:
        return [f"alerts: {rep.alerts.unavailable}"]
    if not rep.alerts.rows:
        out = ["alerts: no alerts firing"]
    else:
        out = [f"alerts firing ({len(rep.alerts.rows)}):"]
        out += [f"  {line}" for line in alerting.alert_lines(list(rep.alerts.rows))]
    prom = rep.services.get(PROMETHEUS.name)
    if prom is None or not prom.ok:
        state = "absent" if prom is None else f"{prom.state}, {prom.health}"
        out.append(f"alerts: {PROMETHEUS.title} is {state}: alert rules may not be evaluated, so an "
                   f"alert can be missing here — `{cmd(f'logs --service {PROMETHEUS.name}')}`, `{cmd('up')}`")
    return out
