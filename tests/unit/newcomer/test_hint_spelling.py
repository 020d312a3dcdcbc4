"""#2: every hint names the command the user has. No string the stack prints spells
`invoke TASK` (the user of ./stack has no `invoke` on PATH); hints come from
console.cmd(), which spells it the way the user's shell runs it."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

import tasks
from stackctl import console

REPO = Path(__file__).resolve().parents[3]


def _task_names() -> set[str]:
    names = set(tasks.ns.task_names)
    for coll_name, coll in tasks.ns.collections.items():
        names |= {f"{coll_name}.{t}" for t in coll.task_names}
    return names


_ALTERNATIVES = "|".join(re.escape(n) for n in sorted(_task_names(), key=len, reverse=True))
HINT = re.compile(rf"\binvoke\s+(?:{_ALTERNATIVES})\b")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of docstring nodes (module, class, plain function) — not printed as hints.
    A task's docstring IS printed (`--help`), so those stay in."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            is_task = any("task" in ast.unparse(d) for d in getattr(node, "decorator_list", []))
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str) and not is_task:
                out.add(id(body[0].value))
    return out


def literal_invoke_hints(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                m = HINT.search(node.value)
                if m:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {m.group(0)!r}")
    return found


def test_no_string_in_stackctl_spells_invoke_task():
    assert literal_invoke_hints(REPO / "stackctl") == []


def test_the_detector_finds_a_literal_hint(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text('"""`invoke up` in a docstring is no hint."""\n'
                              'FIX = "run `invoke logs exporter`"\n'
                              'def f():\n    return f"then `invoke up`"\n')
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        assert [h.split(": ", 1)[1] for h in literal_invoke_hints(pkg)] == ["'invoke logs'", "'invoke up'"]
    finally:
        REPO = saved


@pytest.fixture
def fresh_cmd(monkeypatch):
    console._stack_program.cache_clear()
    yield monkeypatch
    console._stack_program.cache_clear()


def test_cmd_in_the_project_on_posix(fresh_cmd):
    fresh_cmd.setenv("STACK_CWD", str(REPO))
    fresh_cmd.setattr(sys, "platform", "linux")
    assert console.cmd("logs open-webui") == "./stack logs open-webui"


def test_cmd_on_windows_runs_stack_cmd_in_cmd_and_powershell(fresh_cmd):
    fresh_cmd.setenv("STACK_CWD", str(REPO))
    fresh_cmd.setattr(sys, "platform", "win32")
    assert console.cmd("up") == ".\\stack up"


def test_cmd_from_another_directory_is_the_scripts_path(fresh_cmd, tmp_path):
    fresh_cmd.setenv("STACK_CWD", str(tmp_path))
    fresh_cmd.setattr(sys, "platform", "linux")
    assert console.cmd("status") == f"{REPO / 'stack'} status"


def test_readme_commands_use_the_one_spelling():
    bad = [ln for ln in (REPO / "README.md").read_text().splitlines() if HINT.search(ln)
           and "activate" not in ln]
    assert bad == []


def test_what_compose_and_the_alerts_print_uses_the_one_spelling():
    """compose.yaml's "is not set" messages (compose prints them) and the alert runbooks
    (they reach Slack, e-mail, `./stack status`) name ./stack, and .\\stack for Windows."""
    files = [REPO / "compose.yaml", *sorted((REPO / "prometheus" / "rules").glob("*.yml")),
             *sorted((REPO / "alertmanager").rglob("*.tmpl"))]
    bad = [f"{p.relative_to(REPO)}:{n}" for p in files
           for n, ln in enumerate(p.read_text().splitlines(), 1) if HINT.search(ln)]
    assert bad == []
    runbooks = [ln for p in (REPO / "prometheus" / "rules").glob("*.alerts.yml")
                for ln in p.read_text().splitlines() if "runbook:" in ln and "./stack" in ln]
    assert runbooks and all("(on Windows `.\\stack …`)" in ln for ln in runbooks)
