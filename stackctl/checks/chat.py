"""The chat-path checks (smoke; doctor reuses the Open WebUI ones): Foundry Local, Open WebUI, sign-in,
the stored connection, the model list, and a real chat (plain and streamed).

Invariants: each check does its HTTP through ``Ctx.http`` (an injectable
``httpx.Client``; the openai client rides on it too) and either returns the
detail of a pass or raises ``Failed(detail, fix)``. Sign-in goes through
``openwebui.login``, which reuses the token cached in the state dir, so running
smoke over and over never trips Open WebUI's sign-in rate limit.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai

from stackctl import openwebui
from stackctl.checks.context import Ctx, need_foundry, need_model, need_openwebui
from stackctl.checks.runner import Check, Failed
from stackctl.config.settings import OPENWEBUI
from stackctl.console import cmd
from stackctl.errors import StackError
from stackctl.foundry import view as foundry_link

PROMPT = "Say hello in three words."
MAX_TOKENS = 16

FIX_FOUNDRY = (f"start Foundry Local: `{cmd('up')}` serves the stack's own when none is found "
               f"(or `{cmd('foundry.serve')}`); for your own server set FOUNDRY_LOCAL_ENDPOINT in .env")
FIX_NO_MODEL = ("load a chat model: `foundry model load ALIAS` for your Foundry Local; the stack's "
                f"embedded one reloads its model itself — or `{cmd('foundry.stop')}` then `{cmd('up')}`")
FIX_OPENWEBUI = f"`{cmd('logs open-webui')}`, then `{cmd('up')}` (restarts it and waits for health)"
FIX_RECONCILE = f"`{cmd('up')}` repoints Open WebUI at the current Foundry Local (chats and settings are kept)"


# -- 1. Foundry Local ----------------------------------------------------------


def check_foundry(ctx: Ctx) -> str:
    view, reason = (ctx.discover or foundry_link.current)(ctx.stack)
    if view is None:
        raise Failed(foundry_link.not_found_detail(reason, "Foundry Local not found or not answering"),
                     FIX_FOUNDRY)
    ctx.view = view
    if not view.chat_models:
        raise Failed(f"Foundry Local at {view.root_url} answers but has no chat model loaded", FIX_NO_MODEL)
    client = ctx.openai(view.openai_url, "foundry-local")
    try:
        done = client.chat.completions.create(model=view.chat_models[0], max_tokens=MAX_TOKENS,
                                              messages=[{"role": "user", "content": PROMPT}])
    except openai.APIStatusError as err:
        raise Failed(f"direct completion with {view.chat_models[0]} at {view.openai_url} failed: "
                     f"HTTP {err.status_code} {_api_message(err)}", FIX_NO_MODEL) from None
    except openai.APIConnectionError as err:
        raise Failed(f"Foundry Local at {view.openai_url} stopped answering: {err}", FIX_FOUNDRY) from None
    content = _content(done)
    if not content:
        raise Failed(f"direct completion with {view.chat_models[0]} returned no content",
                     f"`{cmd('logs')}` of your Foundry Local; try another model")
    ctx.notes["foundry_answered_at"] = time.time()  # the exporter's verdict compares with it
    return (f"{view.root_url} ({view.source}) serves {', '.join(view.chat_models)}; "
            f"direct completion {_quote(content)}")


# -- 2. Open WebUI up --------------------------------------------------------------


def check_openwebui(ctx: Ctx) -> str:
    base = ctx.stack.api_url(OPENWEBUI.port_key)
    for path in ("/health", "/ready"):
        try:
            r = ctx.http.get(base + path, timeout=5)
        except httpx.HTTPError as err:
            raise Failed(f"Open WebUI at {base} does not answer ({_short(err)})",
                         f"`{cmd('status')}`; " + FIX_OPENWEBUI) from None
        if r.status_code != 200:
            raise Failed(f"Open WebUI {path} answers HTTP {r.status_code}", FIX_OPENWEBUI)
    ctx.openwebui_up = True
    ctx.ui = openwebui.OpenWebUI(base, http=ctx.http)
    return f"{base} /health and /ready answer 200"


# -- 3. sign-in -----------------------------------------------------------------------


def check_signin(ctx: Ctx) -> str:
    env, ui = ctx.stack.env, ctx.ui
    assert ui is not None
    cached = ctx.stack.state_dir / openwebui.TOKEN_FILE
    before = cached.read_text().strip() if cached.exists() else None
    try:
        openwebui.login(ui, env["WEBUI_ADMIN_EMAIL"], env["WEBUI_ADMIN_PASSWORD"], ctx.stack.state_dir)
    except StackError as err:
        msg, _, fix = str(err).partition(" — ")
        raise Failed(msg, fix or FIX_OPENWEBUI) from None
    ctx.signed_in = True
    how = "reused the cached token" if ui.token == before else "signed in; token cached for the next runs"
    return f"admin {env['WEBUI_ADMIN_EMAIL']}: {how}"


# -- 4. stored connection ------------------------------------------------------------


def verify_body(cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(stored URL, body of POST /openai/verify for connection 0). Pure.

    Open WebUI 0.12.4 ``ConnectionVerificationForm``: ``url``, ``key``, ``config``.
    """
    urls = cfg.get("OPENAI_API_BASE_URLS") or []
    keys = cfg.get("OPENAI_API_KEYS") or []
    if not urls:
        return "", {}
    conf = (cfg.get("OPENAI_API_CONFIGS") or {}).get("0") or {}
    return urls[0], {"url": urls[0], "key": keys[0] if keys else "", "config": conf}


def check_connection(ctx: Ctx) -> str:
    ui, view = ctx.ui, ctx.view
    assert ui is not None and view is not None
    cfg = ui.openai_config()
    stored, body = verify_body(cfg)
    if not stored or cfg.get("ENABLE_OPENAI_API") is False:
        raise Failed("Open WebUI has no enabled OpenAI connection", FIX_RECONCILE)
    r = ui.post("/openai/verify", json=body, timeout=30)
    verified = r.status_code == 200 and isinstance(_json(r), dict) and "data" in _json(r)
    why = "" if verified else f"; POST /openai/verify of it fails: HTTP {r.status_code} {_body_message(r)}"
    want = view.container_openai_url  # the gateway: the one door to Foundry Local
    if stored != want:
        raise Failed(f"Open WebUI's stored connection is {stored}, but the gateway to Foundry "
                     f"Local is at {want}{why}", FIX_RECONCILE)
    if not verified:
        raise Failed(f"Open WebUI cannot reach Foundry Local at {stored}{why}",
                     foundry_link.unreachable_fix(view) + f"; then `{cmd('doctor')}`")
    return f"{stored} (= the gateway to Foundry Local); POST /openai/verify ok"


# -- 5. models ------------------------------------------------------------------------


def check_models(ctx: Ctx) -> str:
    assert ctx.ui is not None and ctx.view is not None
    offered = ctx.ui.models(refresh=True)
    missing = [m for m in ctx.view.chat_models if m not in offered]
    if missing:
        raise Failed(f"Open WebUI does not offer {', '.join(missing)} (offers: "
                     f"{', '.join(offered) or 'nothing'})", FIX_RECONCILE)
    return f"/api/models?refresh=true offers {', '.join(offered)}"


# -- 6. chat through Open WebUI ------------------------------------------------------


def _ui_client(ctx: Ctx) -> openai.OpenAI:
    assert ctx.ui is not None and ctx.ui.token
    return ctx.openai(ctx.ui.base_url + "/api", ctx.ui.token)


def _chat_failed(err: openai.OpenAIError, what: str) -> Failed:
    if isinstance(err, openai.APIStatusError):
        detail = f"{what} through Open WebUI failed: HTTP {err.status_code} {_api_message(err)}"
    else:
        detail = f"{what} through Open WebUI failed: {_short(err)}"
    return Failed(detail, f"`{cmd('logs open-webui')}`; `{cmd('doctor')}` (Foundry reachable from a container?)")


def check_chat(ctx: Ctx) -> str:
    try:
        done = _ui_client(ctx).chat.completions.create(
            model=ctx.model, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": PROMPT}])
    except openai.OpenAIError as err:
        raise _chat_failed(err, "chat") from None
    content = _content(done)
    if not content:
        raise Failed(f"chat through Open WebUI returned no content ({_short(done)})",
                     f"`{cmd('logs open-webui')}`")
    return f"/api/chat/completions with {ctx.model}: {_quote(content)}"


def stream_verdict(chunks: list[Any]) -> tuple[str, str | None]:
    """(content, finish_reason) of a streamed chat; a stream that ends properly
    carries a finish_reason on its last choice. Pure."""
    text, finish = [], None
    for c in chunks:
        for ch in getattr(c, "choices", None) or []:
            if ch.delta and ch.delta.content:
                text.append(ch.delta.content)
            if ch.finish_reason:
                finish = ch.finish_reason
    return "".join(text), finish


def check_stream(ctx: Ctx) -> str:
    try:
        stream = _ui_client(ctx).chat.completions.create(
            model=ctx.model, max_tokens=MAX_TOKENS, stream=True,
            messages=[{"role": "user", "content": PROMPT}])
        with stream:
            chunks = list(stream)
    except openai.OpenAIError as err:
        raise _chat_failed(err, "streamed chat") from None
    except httpx.HTTPError as err:
        raise Failed(f"the stream from Open WebUI broke off: {_short(err)}",
                     f"`{cmd('logs open-webui')}`") from None
    content, finish = stream_verdict(chunks)
    if not content:
        raise Failed(f"streamed chat returned no content in {len(chunks)} chunks", f"`{cmd('logs open-webui')}`")
    if finish is None:
        raise Failed(f"the stream ended without a finish_reason after {len(chunks)} chunks (cut off)",
                     f"`{cmd('logs open-webui')}`; check a proxy is not buffering or cutting SSE")
    return f"{len(chunks)} chunks, finish_reason={finish}: {_quote(content)}"


# -- helpers -------------------------------------------------------------------------


def _content(done: Any) -> str:
    try:
        return done.choices[0].message.content or ""
    except (AttributeError, IndexError, TypeError):
        return ""


def _quote(text: str, limit: int = 40) -> str:
    one = " ".join(text.split())
    return repr(one if len(one) <= limit else one[: limit - 1] + "…")


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


def _body_message(r: httpx.Response) -> str:
    body = _json(r)
    if isinstance(body, dict):
        err = body.get("error")
        msg = body.get("detail") or (err.get("message") if isinstance(err, dict) else err)
        if msg:
            return str(msg)[:200]
    return r.text[:200]


def _api_message(err: openai.APIStatusError) -> str:
    return _body_message(err.response)


def _short(obj: object) -> str:
    text = str(obj).strip().splitlines()
    return (text[-1] if text else type(obj).__name__)[:200]


CHECKS: tuple[Check, ...] = (
    Check("foundry", check_foundry),
    Check(OPENWEBUI.name, check_openwebui),
    Check("sign-in", check_signin, need_openwebui),
    Check("connection", check_connection, need_foundry),
    Check("models", check_models, need_model),
    Check("chat", check_chat, need_model),
    Check("chat-stream", check_stream, need_model),
)
