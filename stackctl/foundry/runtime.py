"""The Foundry Local runtime through foundry-local-sdk, in this process.

Used by the server process (``python -m stackctl.foundry.server``) and by the
benchmark. Each step is a plain function so the benchmark can time the bare
SDK sequence (initialize, register/download, load, start) the same way.

Invariants: the SDK is imported lazily (``require_sdk``), so the rest of the
package works without it; SDK failures become StackError with a one-line
message and the next step; nothing here ever calls ``POST /shutdown``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stackctl.console import cmd
from stackctl.errors import StackError, UsageError
from stackctl.foundry.model_spec import ModelSpec
from stackctl.foundry.paths import FoundryPaths

APP_NAME = "foundry-local-chat-stack"
INSTALL_HINT = "pip install 'foundry-local-chat-stack[foundry]'"
DEFAULT_CATALOG_URL = "https://api.catalog.azureml.ms/asset-gallery/v1.0/models"


def require_sdk() -> Any:
    """Import foundry_local_sdk or raise the one-line install hint."""
    try:
        import foundry_local_sdk
    except ImportError:
        raise UsageError(f"foundry-local-sdk is not installed — run `{INSTALL_HINT}` and retry") from None
    return foundry_local_sdk


@dataclass
class Runtime:
    manager: Any
    model: Any
    model_id: str
    urls: list[str]


def initialize(paths: FoundryPaths, web_urls: str, catalog_url: str | None) -> Any:
    """Create the SDK manager (one per process) with the stack's directories."""
    sdk = require_sdk()
    for d in (paths.app_data, paths.model_cache, paths.runtime_logs):
        d.mkdir(parents=True, exist_ok=True)
    config = sdk.Configuration(
        app_name=APP_NAME,
        app_data_dir=str(paths.app_data),
        model_cache_dir=str(paths.model_cache),
        logs_dir=str(paths.runtime_logs),
        web=sdk.Configuration.WebService(urls=web_urls),
        catalog_urls=[(catalog_url, None)] if catalog_url else None,
        disable_nonessential_telemetry=True,
    )
    try:
        sdk.FoundryLocalManager.initialize(config)
    except sdk.FoundryLocalException as err:
        raise StackError(f"Foundry Local runtime failed to start: {_one_line(err)}") from None
    return sdk.FoundryLocalManager.instance


def register_local(manager: Any, spec: ModelSpec) -> Any:
    """Register (or reuse the registration of) a local folder in the local catalog."""
    sdk = require_sdk()
    local = manager.get_catalog(sdk.CatalogType.LOCAL)
    existing = local.get_model_variant(spec.local_id)
    if existing is not None:
        if _same_path(existing.get_path(), spec.path):
            return existing
        local.unregister_model(spec.local_id)  # registered from another folder before
    with sdk.ModelInfoBuilder() as metadata:
        metadata.set_string_property("task", "chat-completion")
        metadata.set_string_property("display_name", spec.alias)
        try:
            return local.register_model(model_path=spec.path, model_id=spec.local_id, metadata=metadata)
        except sdk.FoundryLocalException as err:
            raise UsageError(f"--model-path {spec.path}: cannot register it as a model: {_one_line(err)}") from None


def catalog_model(manager: Any, alias: str, catalog_url: str) -> Any:
    """The catalog model for ``alias``; offline and unknown aliases are one-line errors."""
    model = manager.catalog.get_model(alias)
    if model is not None:
        return model
    known = sorted({m.alias for m in manager.catalog.list_models()})
    if not known:
        raise StackError(offline_message(alias, catalog_url), exit_code=2)
    shown = ", ".join(known[:12]) + (", …" if len(known) > 12 else "")
    raise UsageError(f"unknown model alias {alias!r} — the catalog has: {shown}")


def offline_message(alias: str, catalog_url: str) -> str:
    """Says which model needed the catalog without claiming an option the user may not
    have passed (the alias may come from FOUNDRY_MODEL in .env), and the offline way."""
    host = re.sub(r"^https?://([^/]+).*$", r"\1", catalog_url)
    return (
        f"the Foundry model catalog ({host}) is unreachable or empty, and the catalog model "
        f"{alias!r} needs it (catalog models download from the internet) — connect to the internet, "
        "or serve a local ONNX Runtime GenAI folder offline: "
        f"`{cmd('up --model-path DIR')}` (remembered as FOUNDRY_MODEL_PATH in .env; "
        "or set FOUNDRY_MODEL_PATH=DIR there yourself)"
    )


def download(model: Any, progress: Callable[[float], None]) -> None:
    if model.is_cached:
        return
    sdk = require_sdk()
    try:
        model.download(progress_callback=progress)
    except sdk.FoundryLocalException as err:
        raise StackError(f"downloading {model.id} failed: {_one_line(err)} — check the internet connection and retry") from None


def load(model: Any) -> None:
    sdk = require_sdk()
    try:
        model.load()
    except sdk.FoundryLocalException as err:
        raise StackError(f"loading {model.id} failed: {_one_line(err)} — see the server log") from None


def start_web(manager: Any, port: int) -> list[str]:
    sdk = require_sdk()
    try:
        manager.start_web_service()
    except sdk.FoundryLocalException as err:
        text = _one_line(err)
        if "in use" in text.lower() or "bind" in text.lower():
            raise StackError(port_in_use_message(port), exit_code=2) from None
        raise StackError(f"Foundry Local web service failed to start: {text}") from None
    return list(manager.urls or [])


def port_in_use_message(port: int) -> str:
    return f"port {port} is already in use — stop what uses it, or pass --port N (or set FOUNDRY_PORT in .env)"


def _same_path(a: str | None, b: str) -> bool:
    from pathlib import Path

    try:
        return a is not None and Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    text = re.sub(r"^\[[^\]]*\]:\s*", "", text)  # native "[file::func]: " prefix
    return text[:300]
