"""`invoke doctor`: the troubleshooting steps users otherwise do by hand.

Each check returns Findings (ok / warn / error, each non-ok one with its fix);
a check that raises becomes an error finding, so one broken link never hides
the others. Exit code by severity: 0 all ok, 1 warnings, 2 errors. No finding
ever contains a secret value.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from stackctl import openwebui
from stackctl.config import envfile
from stackctl.config.settings import PORT_KEYS, SECRET_KEYS
from stackctl.config.stack import ROOT, Stack, env_file_path
from stackctl.docker import compose as composer
from stackctl.docker import engine
from stackctl.errors import StackError
from stackctl.foundry import view as foundry_link

_CODES = {"ok": 0, "warn": 1, "error": 2}


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # ok | warn | error
    message: str
    fix: str = ""

    @property
    def exit_code(self) -> int:
        return _CODES[self.severity]

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def ok(check: str, msg: str) -> Finding:
    return Finding(check, "ok", msg)


def warn(check: str, msg: str, fix: str) -> Finding:
    return Finding(check, "warn", msg, fix)


def error(check: str, msg: str, fix: str) -> Finding:
    return Finding(check, "error", msg, fix)


class Ctx:
    """What the checks share; filled lazily so a missing Docker doesn't stop .env checks."""

    def __init__(self, stack: Stack | None) -> None:
        self.stack = stack
        self._client = None
        self.view: foundry_link.FoundryView | None = None

    @property
    def client(self):
        if self._client is None:
            self._client = engine.client()
        return self._client


Check = Callable[[Ctx], Iterator[Finding]]


def check_env(ctx: Ctx) -> Iterator[Finding]:
    path = env_file_path(ROOT)
    if not path.exists():
        yield error("env", f"{path} does not exist", "run `invoke up` (it creates it)")
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        yield error("env", f"{path.name} is readable by others (mode {mode:o}); it holds secrets",
                    f"chmod 600 {path}")
    else:
        yield ok("env", f"{path.name} exists with mode 600")
    raw = envfile.values(envfile.parse(path.read_text(), str(path)))
    weak = [k for k in sorted(SECRET_KEYS) if len(raw.get(k, "")) < 12]
    if weak:
        yield error("secrets", f"{', '.join(weak)} missing or shorter than 12 characters",
                    "delete those lines from .env and run `invoke up` to generate new ones")
    else:
        yield ok("secrets", "generated secrets present")
    if ctx.stack and ctx.stack.bind not in ("127.0.0.1", "::1"):
        yield warn("security", f"published ports bind to {ctx.stack.bind}: reachable from your network",
                   "set STACK_BIND_ADDRESS=127.0.0.1 in .env unless you opened the stack on purpose "
                   "(README, Security)")


def check_docker(ctx: Ctx) -> Iterator[Finding]:
    ctx.client  # noqa: B018 - raises StackError with the fix when unreachable
    yield ok("docker", "Docker Engine reachable")
    c = composer.find()
    yield ok("compose", f"compose found: {c.label}")
    root = ctx.client.info().get("DockerRootDir", "/var/lib/docker")
    probe = Path(root) if Path(root).exists() else ROOT
    free_gib = shutil.disk_usage(probe).free / 2**30
    if free_gib < 1:
        yield error("disk", f"only {free_gib:.1f} GiB free under {probe}", "free disk space (`docker system df`)")
    elif free_gib < 5:
        yield warn("disk", f"{free_gib:.1f} GiB free under {probe}; images need ~4 GiB",
                   "free disk space (`docker system df`)")
    else:
        yield ok("disk", f"{free_gib:.0f} GiB free under {probe}")


def check_foundry(ctx: Ctx) -> Iterator[Finding]:
    assert ctx.stack is not None
    view, reason = foundry_link.current(ctx.stack)
    if view is None:
        yield error("foundry", f"Foundry Local not found: {reason}",
                    "start Foundry Local, or `invoke foundry.serve --model-path DIR`, or set "
                    "FOUNDRY_LOCAL_ENDPOINT in .env")
        return
    ctx.view = view
    yield ok("foundry", f"Foundry Local at {view.root_url} ({view.source}, {view.generation})")
    if not view.chat_models:
        yield error("models", "no chat model is loaded", "load one: `foundry model load ALIAS`, "
                    "or restart with `invoke foundry.serve --model ALIAS`")
    else:
        yield ok("models", f"loaded: {', '.join(view.chat_models)}")
    if view.binds_everywhere:
        yield warn("security", "the embedded Foundry server listens on all addresses; its "
                   "POST /shutdown needs no authentication", "restart it without --host 0.0.0.0")
    image = ctx.stack.env["OPENWEBUI_IMAGE"]
    if not engine.image_present(ctx.client, image):
        yield warn("container-reach", f"not checked: {image} is not on this machine yet",
                   "`invoke up` pulls it and checks reachability from a container")
        return
    ok_, detail = engine.curl_from_container(ctx.client, image, view.container_openai_url + "/models")
    if ok_:
        yield ok("container-reach", f"reachable from a container at {view.container_openai_url}")
    else:
        yield error("container-reach", f"not reachable from a container ({detail})",
                    foundry_link.unreachable_fix(view))


def check_services(ctx: Ctx) -> Iterator[Finding]:
    assert ctx.stack is not None
    states = engine.services(ctx.client, ctx.stack.project)
    own = engine.published_ports(states)
    for key in PORT_KEYS:
        if key == "GRAFANA_PORT" and "grafana" not in ctx.stack.profiles:
            continue
        port = int(ctx.stack.env[key])
        if port not in own and not engine.port_free(ctx.stack.bind, port):
            yield error("ports", f"port {port} ({key}) is taken by another program",
                        f"stop it or set {key} to a free port in .env")
    for svc in ctx.stack.services:
        s = states.get(svc)
        if s is None:
            yield warn(svc, "not running", "`invoke up`")
        elif not s.ok:
            yield error(svc, f"{s.state}, {s.health}", f"`invoke logs {svc}`; then `invoke up`")
        elif s.restarts:
            yield warn(svc, f"healthy but restarted {s.restarts}×", f"`invoke logs {svc}` for the cause")
        else:
            yield ok(svc, "running, healthy")
        if svc == "grafana" and s is not None:
            env = ctx.client.containers.get(s.container).attrs["Config"].get("Env") or []
            anon = [e.partition("=")[2].lower() for e in env if e.startswith("GF_AUTH_ANONYMOUS_ENABLED=")]
            if anon and anon[-1] == "true":
                yield warn("security", "Grafana allows anonymous access",
                           "remove GF_AUTH_ANONYMOUS_ENABLED=true and run `invoke up`")
        if s and any(not p.startswith(("127.0.0.1:", "::1:", "[::1]:")) for p in s.ports) \
                and ctx.stack.bind in ("127.0.0.1", "::1"):
            yield warn("security", f"{svc} publishes a port beyond loopback: {', '.join(s.ports)}",
                       "`invoke up` re-creates it with the .env bind address")


def check_openwebui(ctx: Ctx) -> Iterator[Finding]:
    assert ctx.stack is not None
    ui = openwebui.OpenWebUI(ctx.stack.api_url("OPENWEBUI_PORT"))
    if not ui.health():
        yield error("open-webui-api", "Open WebUI does not answer /health", "`invoke up`; `invoke logs open-webui`")
        return
    cfg = ui.get("/api/config").json()
    if (cfg.get("features") or {}).get("enable_signup"):
        yield warn("security", "Open WebUI allows public signup", "Admin Panel → Settings → General → disable 'Enable New Sign Ups'")
    openwebui.login(ui, ctx.stack.env["WEBUI_ADMIN_EMAIL"], ctx.stack.env["WEBUI_ADMIN_PASSWORD"],
                    ctx.stack.state_dir)
    stored = ui.openai_config()
    if ctx.view is not None:
        if openwebui.desired_openai_config(stored, ctx.view.container_openai_url,
                                           list(ctx.view.chat_models)) is not None:
            urls = stored.get("OPENAI_API_BASE_URLS") or ["(none)"]
            yield warn("connection", f"Open WebUI's stored connection ({urls[0]}) or its model list "
                       f"differs from Foundry's current {ctx.view.container_openai_url}",
                       "`invoke up` reconciles it (chats and settings are kept)")
        else:
            yield ok("connection", "Open WebUI's stored connection matches Foundry Local")
        models = ui.models(refresh=True)
        missing = [m for m in ctx.view.chat_models if m not in models]
        if missing:
            yield error("openwebui-models", f"Open WebUI does not offer {', '.join(missing)}",
                        "`invoke up` to reconcile; then `invoke smoke`")
        else:
            yield ok("openwebui-models", f"Open WebUI offers {', '.join(models) or 'no models'}")


CHECKS: tuple[Check, ...] = (check_env, check_docker, check_foundry, check_services, check_openwebui)


def run_doctor(checks: tuple[Check, ...] = CHECKS) -> list[Finding]:
    try:
        from stackctl.config.stack import load_stack

        stack: Stack | None = load_stack()
    except StackError:
        stack = None
    ctx = Ctx(stack)
    findings: list[Finding] = []
    for chk in checks:
        name = chk.__name__.removeprefix("check_")
        if stack is None and chk is not check_env:
            findings.append(error(name, "skipped: .env is missing or invalid", "fix .env first (see above)"))
            continue
        try:
            findings.extend(chk(ctx))
        except StackError as err:
            findings.append(error(name, str(err), "see the message"))
        except Exception as exc:  # a broken link must not hide the other checks
            findings.append(error(name, f"{type(exc).__name__}: {str(exc)[:160]}", "`invoke logs`"))
    return findings
