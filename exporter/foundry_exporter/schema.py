"""Strict readers for YAML config nodes that collect every problem at once.

Invariant: a reader never raises for a bad value; it records one line
``<file>: <key path>: <problem>; <fix>`` and returns None, so the caller can go
on and report all problems together (blackbox_exporter style, but complete).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from .durations import parse_duration

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def q(value: object) -> str:
    """A value quoted the way the messages quote keys: "text", numbers bare."""
    return json.dumps(value) if isinstance(value, str) else str(value)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def valid_name(value: str) -> bool:
    """Target and module names: safe as label values and in URLs."""
    return bool(_NAME_RE.match(value))


def type_name(value: object) -> str:
    """How a YAML user would call the type of ``value``."""
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


class Problems:
    """Accumulates problem lines for one config file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        where = f"{self.file}: {path}: " if path else f"{self.file}: "
        self.lines.append(where + message)

    def mapping(self, node: Any, path: str, allowed: Iterable[str]) -> dict | None:
        """``node`` as a dict whose keys are all in ``allowed`` (unknown keys are recorded)."""
        if not isinstance(node, dict):
            self.add(path, f"expected a mapping, got {type_name(node)}")
            return None
        allowed = sorted(allowed)
        for key in node:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                fix = f'did you mean "{hint[0]}"?' if hint else "allowed keys: " + ", ".join(allowed)
                self.add(path, f'unknown key "{key}"; {fix}')
        return node

    def duration(self, node: dict, key: str, path: str, default: float) -> float:
        if key not in node:
            return default
        try:
            return parse_duration(node[key])
        except ValueError:
            self.add(join(path, key), f"invalid duration {q(node[key])}; use seconds or a string "
                     'like "500ms", "30s", "2m"')
            return default

    def integer(self, node: dict, key: str, path: str, default: int, lo: int, hi: int) -> int:
        value = node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.add(join(path, key), f"expected an integer from {lo} to {hi}, got {q(value)}")
            return default
        return value

    def boolean(self, node: dict, key: str, path: str, default: bool) -> bool:
        value = node.get(key, default)
        if not isinstance(value, bool):
            self.add(join(path, key), f"expected true or false, got {q(value)}")
            return default
        return value

    def string(self, node: dict, key: str, path: str, required: str | None = None) -> str | None:
        """A non-empty string; ``required`` is the fix to print when the key is missing."""
        if key not in node:
            if required:
                self.add(join(path, key), f"missing; {required}")
            return None
        value = node[key]
        if not isinstance(value, str) or not value.strip():
            self.add(join(path, key), f"expected a non-empty string, got {type_name(value)}")
            return None
        return value

    def choice(self, node: dict, key: str, path: str, choices: Iterable[str],
               what: str) -> str | None:
        choices = tuple(choices)
        if key not in node:
            self.add(join(path, key), f"missing; set it to one of: {', '.join(choices)}")
            return None
        value = node[key]
        if value not in choices:
            self.add(join(path, key), f"unknown {what} {q(value)}; use one of: {', '.join(choices)}")
            return None
        return value

    def name(self, node: dict, key: str, path: str) -> str | None:
        value = self.string(node, key, path, required="give it a short unique name like foundry")
        if value is not None and not _NAME_RE.match(value):
            self.add(join(path, key), f'{q(value)} is not a valid name; use letters, digits, "_", "-", "."')
            return None
        return value

    def env(self, node: dict, key: str, path: str, environ: dict[str, str],
            fix: str) -> str | None:
        """The value of the environment variable named at ``node[key]``."""
        var = self.string(node, key, path)
        if var is None:
            return None
        if not _ENV_RE.match(var):
            self.add(join(path, key), f"{q(var)} is not an environment variable name; "
                     "use letters, digits and _")
            return None
        if not environ.get(var):
            self.add(join(path, key), f"environment variable {var} is not set; {fix}")
            return None
        return environ[var]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f'duplicate key "{key}"', key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, problems: Problems) -> Any:
    """Parsed YAML, or None with a problem naming line and column."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.add("", f"invalid YAML{where}: {exc.problem or exc.context}; fix the syntax")
    except yaml.YAMLError as exc:
        problems.add("", f"invalid YAML: {exc}; fix the syntax")
    return None


def each(items: list, path: str, read: Callable[[Any, str], Any]) -> list:
    """``read(item, "path[i]")`` for every item, dropping the ones that failed (None)."""
    out = [read(item, f"{path}[{i}]") for i, item in enumerate(items)]
    return [o for o in out if o is not None]
