"""Bench inputs: the prompt set and the model list, validated strictly.

Unknown keys and bad values are errors naming the file, the key path and the
problem — all problems of a file at once, in one line (UsageError, exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from stackctl.errors import UsageError

DEFAULT_PROMPTS = Path(__file__).with_name("prompts.yaml")
MAX_TOKENS_LIMIT = 4096


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    max_tokens: int


@dataclass(frozen=True)
class PromptSet:
    source: str
    prompts: tuple[Prompt, ...]


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path}: not valid YAML{where}") from None


def _max_tokens(value: object, key: str, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
        problems.append(f"{key}: must be an integer from 1 to {MAX_TOKENS_LIMIT}, got {value!r}")
        return None
    return value


def parse_prompts(doc: object, source: str) -> PromptSet:
    """PromptSet from a loaded YAML document; UsageError listing every problem. Pure."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise UsageError(f"{source}: top level must be a mapping with 'prompts'")
    for key in sorted(set(doc) - {"max_tokens", "prompts"}, key=str):
        problems.append(f"{key}: unknown key (allowed: max_tokens, prompts)")
    default = _max_tokens(doc.get("max_tokens", 64), "max_tokens", problems) or 64
    items = doc.get("prompts")
    prompts: list[Prompt] = []
    if not isinstance(items, list) or not items:
        problems.append("prompts: must be a non-empty list")
        items = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        at = f"prompts[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{at}: must be a mapping with id and text")
            continue
        for key in sorted(set(item) - {"id", "text", "max_tokens"}, key=str):
            problems.append(f"{at}.{key}: unknown key (allowed: id, text, max_tokens)")
        pid, text = item.get("id"), item.get("text")
        if not isinstance(pid, str) or not pid.strip():
            problems.append(f"{at}.id: must be a non-empty string")
        elif pid in seen:
            problems.append(f"{at}.id: {pid!r} is used twice")
        else:
            seen.add(pid)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{at}.text: must be a non-empty string")
        mt = _max_tokens(item["max_tokens"], f"{at}.max_tokens", problems) if "max_tokens" in item else default
        if isinstance(pid, str) and isinstance(text, str) and mt:
            prompts.append(Prompt(pid, text, mt))
    if problems:
        raise UsageError(f"{source}: " + "; ".join(problems))
    return PromptSet(source, tuple(prompts))


def load_prompts(path: Path | None = None) -> PromptSet:
    path = path or DEFAULT_PROMPTS
    return parse_prompts(_read_yaml(path), str(path))


def parse_models_doc(doc: object, source: str) -> tuple[str, ...]:
    """Model ids from a models file ``models: [id, …]``; UsageError on anything else. Pure."""
    if not isinstance(doc, dict):
        raise UsageError(f"{source}: top level must be a mapping with 'models'")
    problems = [f"{k}: unknown key (allowed: models)" for k in sorted(set(doc) - {"models"}, key=str)]
    items = doc.get("models")
    if not isinstance(items, list) or not items:
        problems.append("models: must be a non-empty list of model ids")
        items = []
    for i, m in enumerate(items):
        if not isinstance(m, str) or not m.strip():
            problems.append(f"models[{i}]: must be a non-empty string, got {m!r}")
    if problems:
        raise UsageError(f"{source}: " + "; ".join(problems))
    return _dedupe(m.strip() for m in items)


def resolve_models(models: str | None, models_file: Path | None) -> tuple[str, ...] | None:
    """Model ids from --models or --models-file; None means 'what Foundry has loaded'."""
    if models and models_file:
        raise UsageError("use --models or --models-file, not both")
    if models_file:
        return parse_models_doc(_read_yaml(models_file), str(models_file))
    if models is not None:
        ids = _dedupe(m.strip() for m in models.split(",") if m.strip())
        if not ids:
            raise UsageError("--models: give at least one model id (comma-separated)")
        return ids
    return None


def _dedupe(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
