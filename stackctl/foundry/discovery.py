"""Where is Foundry Local, which generation is it, and what can it chat with?

Order (first that yields a URL wins; an explicit setting is never second-guessed):
  1. ``FOUNDRY_LOCAL_ENDPOINT`` from the env mapping (``.env`` / environment);
  2. the stack's embedded server (its state file, if its pid is alive);
  3. the ``foundry`` CLI: ``foundry server status`` (new CLI), else
     ``foundry service status`` (classic), URL taken from the output.

Generation: ``GET /status`` answers -> "sdk" (SDK web service and the new CLI);
``GET /openai/status`` answers -> "classic" (Windows/macOS service CLI).

Invariants: discovery only ever issues GETs to status and loaded-model routes
(never ``POST /shutdown``, never a load); parsing is pure; HTTP goes through an
injected ``httpx.Client`` and the CLI through an injected ``run``; every
failure becomes ``Discovery(found=False, reason=…)``, not an exception.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from foundry_exporter.probes.listing import chat_candidates
from stackctl.console import cmd
from stackctl.foundry import state as state_mod
from stackctl.foundry.paths import FoundryPaths
from stackctl.foundry.urls import first_url, models_prefix, openai_base, root_url

SDK = "sdk"
CLASSIC = "classic"


@dataclass(frozen=True)
class Discovery:
    """The answer to "where is Foundry Local?". ``reason`` is set iff not ``found``.

    ``openai_base_urls``: every OpenAI base the service exposes (``…/v1`` and,
    when local models are loaded, ``…/catalogs/local/v1``). ``chat_base_url``
    and ``chat_models`` are the pair to chat with: loaded chat models with their
    exact ids (``name:version`` on the SDK), served under that base.
    """

    found: bool
    source: str | None = None  # "env" | "embedded" | "cli"
    root_url: str | None = None
    generation: str | None = None  # "sdk" | "classic"
    openai_base_urls: tuple[str, ...] = ()
    chat_base_url: str | None = None
    chat_models: tuple[str, ...] = ()
    reason: str | None = None
    tried: tuple[str, ...] = ()  # one line per place looked at, for `doctor`


# -- pure parsing -----------------------------------------------------------


def parse_loaded(payload: Any) -> tuple[str, ...]:
    """Model ids from a loaded-models answer of either generation.

    Accepts a list of ids, a list of objects with ``id``/``modelId``/``name``,
    or an object wrapping such a list in ``data``/``models``/``value``.
    """
    if isinstance(payload, dict):
        for key in ("data", "models", "value"):
            if isinstance(payload.get(key), list):
                payload = payload[key]
                break
        else:
            return ()
    if not isinstance(payload, list):
        return ()
    ids: list[str] = []
    for item in payload:
        if isinstance(item, str):
            ids.append(item)
        elif isinstance(item, dict):
            for key in ("id", "modelId", "model_id", "name"):
                if isinstance(item.get(key), str):
                    ids.append(item[key])
                    break
    return tuple(dict.fromkeys(i for i in ids if i))


def chat_only(ids: tuple[str, ...]) -> tuple[str, ...]:
    """Drop speech, embedding and reranking models, keep order: the exporter's filter,
    so smoke, `up` and the canary always pick from the same models."""
    return chat_candidates(ids)


def parse_cli_status(text: str) -> str | None:
    """Service root from ``foundry server|service status`` output, or None if not running."""
    url = first_url(text)
    if url is None:
        return None
    try:
        return root_url(url)
    except ValueError:
        return None


def assemble(
    source: str, root: str, generation: str, public: tuple[str, ...], local: tuple[str, ...],
    tried: tuple[str, ...] = (),
) -> Discovery:
    """Build the Discovery for a live service from its loaded models (pure).

    Chat goes to the public ``/v1`` when a chat model is loaded there, else to
    ``/catalogs/local/v1`` when one is loaded there, else ``/v1`` with no models.
    """
    public, local = chat_only(public), chat_only(local)
    bases = [openai_base(root)]
    if local:
        bases.append(openai_base(root, local=True))
    if public or not local:
        chat_base, models = openai_base(root), public
    else:
        chat_base, models = openai_base(root, local=True), local
    return Discovery(
        found=True, source=source, root_url=root, generation=generation,
        openai_base_urls=tuple(bases), chat_base_url=chat_base, chat_models=models, tried=tried,
    )


# -- I/O adapters -------------------------------------------------------------


class _Unreachable(Exception):
    pass


def _get_json(http: httpx.Client, url: str) -> Any:
    try:
        response = http.get(url)
    except httpx.HTTPError as err:
        raise _Unreachable(f"{type(err).__name__}: {err}".rstrip(": ")) from None
    if response.status_code != 200:
        raise _Unreachable(f"HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise _Unreachable("answer is not JSON") from None


def probe(http: httpx.Client, source: str, root: str, tried: tuple[str, ...] = ()) -> Discovery:
    """Detect the generation at ``root`` and read its loaded models (GETs only)."""
    try:
        _get_json(http, root + "/status")
        generation = SDK
    except _Unreachable as sdk_err:
        try:
            _get_json(http, root + "/openai/status")
            generation = CLASSIC
        except _Unreachable:
            return Discovery(
                found=False, source=source, root_url=root,
                reason=f"Foundry Local at {root} does not answer /status or /openai/status ({sdk_err})",
                tried=(*tried, f"{source}: {root} not answering ({sdk_err})"),
            )
    try:
        if generation == SDK:
            public = parse_loaded(_get_json(http, models_prefix(root) + "/models/loaded"))
            local = parse_loaded(_get_json(http, models_prefix(root, local=True) + "/models/loaded"))
        else:
            public, local = parse_loaded(_get_json(http, root + "/openai/loadedmodels")), ()
    except _Unreachable as err:
        return Discovery(
            found=False, source=source, root_url=root, generation=generation,
            reason=f"Foundry Local at {root} answers status but not its loaded-models route ({err})",
            tried=(*tried, f"{source}: {root} loaded models failed ({err})"),
        )
    return assemble(source, root, generation, public, local, (*tried, f"{source}: {root} ({generation})"))


def _cli_root(run: Callable[..., subprocess.CompletedProcess]) -> tuple[str | None, str]:
    """(root URL or None, what happened) from the foundry CLI, new generation first."""
    notes: list[str] = []
    for argv in (["foundry", "server", "status"], ["foundry", "service", "status"]):
        try:
            done = run(argv, capture_output=True, text=True, timeout=20, check=False)
        except FileNotFoundError:
            return None, "cli: `foundry` is not installed"
        except (OSError, subprocess.SubprocessError) as err:
            notes.append(f"`{' '.join(argv)}` failed ({err})")
            continue
        url = parse_cli_status((done.stdout or "") + "\n" + (done.stderr or ""))
        if url:
            return url, f"cli: `{' '.join(argv)}` -> {url}"
        notes.append(f"`{' '.join(argv)}` shows no URL (exit {done.returncode})")
    return None, "cli: " + "; ".join(notes)


def discover(
    env: Mapping[str, str],
    state_dir: Path,
    *,
    http: httpx.Client | None = None,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> Discovery:
    """Find Foundry Local (see the module docstring for the order)."""
    own = http is None
    client = http or httpx.Client(timeout=httpx.Timeout(5.0), trust_env=False)
    try:
        return _discover(env, state_dir, client, run)
    finally:
        if own:
            client.close()


def _discover(env: Mapping[str, str], state_dir: Path, http: httpx.Client, run) -> Discovery:
    endpoint = (env.get("FOUNDRY_LOCAL_ENDPOINT") or "").strip()
    if endpoint:
        try:
            root = root_url(endpoint)
        except ValueError:
            return Discovery(
                found=False, source="env",
                reason=f"FOUNDRY_LOCAL_ENDPOINT={endpoint!r} is not an http(s) URL — fix it in .env, e.g. http://127.0.0.1:5273",
                tried=("env: FOUNDRY_LOCAL_ENDPOINT is not a URL",),
            )
        found = probe(http, "env", root)
        if found.found:
            return found
        return _with_reason(found, f"{found.reason} — start Foundry Local there, or clear FOUNDRY_LOCAL_ENDPOINT in .env to discover it")

    tried: list[str] = ["env: FOUNDRY_LOCAL_ENDPOINT not set"]
    live, stale = state_mod.read_live(FoundryPaths(state_dir))
    if live is not None:
        found = probe(http, "embedded", live.root_url, tuple(tried))
        if found.found:
            return found
        tried = list(found.tried)
    else:
        tried.append(f"embedded: stale state file removed (pid {stale.pid} dead)" if stale else "embedded: not running")

    cli_root, note = _cli_root(run)
    tried.append(note)
    if cli_root:
        found = probe(http, "cli", cli_root, tuple(tried))
        if found.found:
            return found
        return _with_reason(found, f"{found.reason} — check `foundry service status` / `foundry server status`")
    return Discovery(
        found=False,
        reason="Foundry Local not found (FOUNDRY_LOCAL_ENDPOINT unset, no embedded server, no running `foundry` service)"
        f" — run `{cmd('foundry.serve --model-path DIR')}` (offline) or `{cmd('foundry.serve')}`, or start Foundry Local and set FOUNDRY_LOCAL_ENDPOINT",
        tried=tuple(tried),
    )


def _with_reason(d: Discovery, reason: str) -> Discovery:
    return Discovery(
        found=False, source=d.source, root_url=d.root_url, generation=d.generation,
        reason=reason, tried=d.tried,
    )
