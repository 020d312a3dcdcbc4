"""`foundry.serve|stop|status`: the stack's own embedded Foundry Local server.

Defaults come from the project's .env (or the settings table when there is no
.env yet), by the one rule of config/stack.py."""

from __future__ import annotations

import invoke
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from stackctl.cli import R, edge
from stackctl.config.settings import FOUNDRY_PORT_KEY
from stackctl.config.stack import ensure_stack, settled_stack
from stackctl.console import cmd
from stackctl.foundry import lifecycle
from stackctl.foundry.events import PROGRESS, STAGE, Event
from stackctl.foundry.view import configured_model, remember_model
from stackctl.lock import locked


@invoke.task(help={
    "model": "catalog model alias to download and serve (needs internet; default FOUNDRY_MODEL)",
    "model-path": "local ONNX Runtime GenAI folder to serve instead (offline; default FOUNDRY_MODEL_PATH)",
    "name": "name of the local model (id NAME-generic-cpu:1); default: the folder name",
    "port": "port to serve on (default FOUNDRY_PORT)",
    "host": "extra address to bind (e.g. 0.0.0.0 — exposes an unauthenticated API; default: loopback + Docker bridge)",
    "catalog-url": "model catalog URL (a mirror); default: the public Foundry catalog",
    "timeout": "seconds of start-up silence before giving up (downloads report progress)",
})
@edge
@locked("foundry.serve")
def serve(c, model=None, model_path=None, name=None, port=None, host=None, catalog_url=None, timeout=None):
    """Serve a model with the real Foundry Local runtime, in the background, until `foundry.stop`."""
    stack = settled_stack()
    env = stack.env
    given = (model, model_path)
    if not model and not model_path:
        model, model_path = configured_model(env)
    with _progress() as on_event:
        st = lifecycle.serve(
            stack.state_dir, port=int(port or env[FOUNDRY_PORT_KEY]), model=model,
            model_path=model_path, name=name, host=host, catalog_url=catalog_url,
            startup_timeout=float(timeout or lifecycle.STARTUP_TIMEOUT_S), on_event=on_event,
            supervise=True,
        )
    R.ok(f"Foundry Local is serving {st.model_id} (pid {st.pid})")
    if any(given):  # .env is created here if this runs before the first `up`
        remember_model(stack if stack.env_file.exists() else ensure_stack()[0], *given, R)
    R.info(f"  OpenAI base URL   {st.chat_base_url}")
    R.info(f"  from containers   through the stack's gateway (`{cmd('up')}`): Foundry listens on loopback only")
    R.info(f"  model id          {st.model_id}")
    R.info(f"  bound to          {', '.join(st.urls)}")
    R.info(f"  log               {st.log_path} (restarted by its supervisor if it crashes)")
    R.info(f"Stop it with: {cmd('foundry.stop')}")


@invoke.task
@edge
@locked("foundry.stop")
def stop(c):
    """Stop the embedded Foundry Local server (SIGTERM, then wait until it is gone)."""
    result = lifecycle.stop(settled_stack().state_dir)
    how = "killed after the SIGTERM deadline" if result.forced else "stopped"
    if result.state is None:
        how += " (it was between restarts: its supervisor was stopped)"
    R.info(f"Foundry Local server pid {result.pid} {how} in {result.seconds:.1f} s")


@invoke.task
@edge
def status(c):
    """Show the embedded Foundry Local server: pid, URLs, loaded models."""
    st = lifecycle.status(settled_stack().state_dir)
    if st.stale is not None:
        R.info(f"removed a stale state file ({st.stale_why or f'pid {st.stale.pid} is gone'})")
    if not st.running:
        raise invoke.Exit(f"{st.problem} — start one with `{cmd('foundry.serve')}`", code=1)
    s = st.state
    table = Table(show_header=False, box=None)
    for key, value in (
        ("pid", str(s.pid)), ("state", "answering" if st.answering else "NOT answering"),
        ("model id", s.model_id), ("loaded models", ", ".join(st.loaded_models) or "none"),
        ("OpenAI base URL", s.chat_base_url), ("from containers", "through the stack's gateway (Foundry listens on loopback only)"),
        ("urls", ", ".join(s.urls)), ("started", s.started_at), ("log", s.log_path),
    ):
        table.add_row(key, value)
    R.console.print(table)
    if st.problem:
        raise invoke.Exit(f"error: {st.problem} — see {s.log_path}", code=1)


class _progress:
    """Rich progress for start-up: a spinner per stage, a bar for downloads."""

    def __enter__(self):
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), console=Console(stderr=True), transient=True,
        )
        self.progress.__enter__()
        self.stage = self.progress.add_task("starting", total=None)
        self.download = None
        return self.on_event

    def on_event(self, event: Event) -> None:
        if event.kind == STAGE:
            self.progress.update(self.stage, description=event.message)
        elif event.kind == PROGRESS:
            if self.download is None:
                self.download = self.progress.add_task(f"download {event.message}", total=100)
            self.progress.update(self.download, completed=event.percent)

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)


ns = invoke.Collection("foundry")
ns.add_task(serve)
ns.add_task(stop)
ns.add_task(status)
