"""What to serve: a catalog alias or a local ONNX Runtime GenAI folder (pure checks).

Invariants: exactly one of alias / path; a local folder must hold
``genai_config.json``; the local model id is ``<name>-generic-cpu:1`` and its
alias ``<name>`` (the runtime's id convention: chat needs the id, load the alias).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stackctl.errors import UsageError

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class ModelSpec:
    alias: str  # catalog alias, or the local model's alias (its name)
    path: str = ""  # local folder (absolute) when serving a local model

    @property
    def local(self) -> bool:
        return bool(self.path)

    @property
    def local_id(self) -> str:
        return f"{self.alias}-generic-cpu:1"


def local_name(folder: Path) -> str:
    """A model name from a folder name: lowercase, runs of other characters -> '-'."""
    return re.sub(r"[^a-z0-9._-]+", "-", folder.name.lower()).strip("-._") or "local-model"


def resolve(model: str | None, model_path: str | None, name: str | None = None) -> ModelSpec:
    """Validate the options; raise UsageError with the fix."""
    if model and model_path:
        raise UsageError("pass either --model ALIAS or --model-path DIR, not both")
    if model_path:
        folder = Path(model_path).expanduser().resolve()
        if not folder.is_dir():
            raise UsageError(f"--model-path {model_path}: no such directory — pass an ONNX Runtime GenAI model folder")
        if not (folder / "genai_config.json").is_file():
            raise UsageError(
                f"--model-path {model_path}: no genai_config.json — pass an ONNX Runtime GenAI model folder "
                "(genai_config.json, model.onnx, tokenizer files)"
            )
        alias = (name or local_name(folder)).lower()
        if not _NAME_RE.match(alias):
            raise UsageError(f"--name {name!r}: use lowercase letters, digits, '.', '_' and '-'")
        return ModelSpec(alias=alias, path=str(folder))
    if name:
        raise UsageError("--name only applies with --model-path")
    if not model:
        raise UsageError("no model: pass --model ALIAS (catalog, needs internet) or --model-path DIR (local, offline)")
    return ModelSpec(alias=model)
