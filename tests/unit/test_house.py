"""The house rules, checked from the code itself: no import cycle among the
project's modules (lazy imports included), and every service, volume, image key,
port key and container port written only in its one home, stackctl/config/settings.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from stackctl.config import settings

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"stackctl": REPO / "stackctl", "foundry_exporter": REPO / "exporter" / "foundry_exporter",
            "grafana": REPO / "grafana"}


def _modules() -> dict[str, Path]:
    mods = {}
    for top, root in PACKAGES.items():
        for p in root.rglob("*.py"):
            parts = [top, *p.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = p
    return mods


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Line numbers of imports under `if TYPE_CHECKING:` (never executed)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    return lines


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_only(tree)
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for name in names:
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != mod and not mod.startswith(name + "."):
                    graph[mod].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_among_the_projects_modules():
    found = cycles(import_graph(_modules()))
    assert not found, f"import cycles: {found}"


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import b\n")
    b.write_text("def f():\n    from a import x\n")
    assert cycles(import_graph({"a": a, "b": b})) == [["a", "b"]]


FACTS: dict[object, str] = {
    **{s.name: "service name" for s in settings.SERVICES},
    **{v: "volume name" for v in settings.VOLUMES},
    **{k: "image key" for k in (*settings.IMAGE_KEYS, settings.BASE_IMAGE_KEY)},
    **{k: "port key" for k in (*settings.PORT_KEYS, settings.FOUNDRY_PORT_KEY)},
    **{s.container_port: "container port" for s in settings.SERVICES},
}
HOME = REPO / "stackctl" / "config" / "settings.py"


def literal_facts(path: Path) -> list[str]:
    """'file:line: value (what)' for each fact written as a literal (docstrings excepted;
    a line that says ``# same word, another fact: …`` is a different fact spelled alike)."""
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text, str(path))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docstrings \
                and isinstance(node.value, str | int) and not isinstance(node.value, bool) \
                and node.value in FACTS and "# same word, another fact:" not in lines[node.lineno - 1]:
            hits.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r} ({FACTS[node.value]})")
    return hits


def test_services_volumes_image_keys_and_ports_live_only_in_settings():
    files = [p for p in (REPO / "stackctl").rglob("*.py") if p != HOME] + [REPO / "tasks.py"]
    hits = [h for p in files for h in literal_facts(p)]
    assert not hits, "write these through stackctl.config.settings:\n" + "\n".join(hits)


@pytest.mark.parametrize("literal", ['"open-webui"', '"OPENWEBUI_IMAGE"', "9090", '"grafana-data"'])
def test_the_fact_check_sees_a_literal(tmp_path, literal):
    p = REPO / "stackctl" / f"_probe_{tmp_path.name}.py"
    try:
        p.write_text(f'"""doc mentions open-webui."""\nX = {literal}\n')
        assert len(literal_facts(p)) == 1
    finally:
        p.unlink()


def test_token_cache_and_state_dir_are_private_whatever_they_were(tmp_path):
    """Issue: a token file that existed as 0644 stayed 0644; .state/ was 0755."""
    from stackctl import openwebui

    state = tmp_path / ".state"
    state.mkdir(mode=0o755)
    old = state / openwebui.TOKEN_FILE
    old.write_text("stale")
    old.chmod(0o644)

    class UI:
        token = None

        def token_valid(self):
            return False

        def signin(self, email, password):
            self.token = "fresh"

    openwebui.login(UI(), "a@b.c", "pw", state)
    assert old.read_text() == "fresh"
    assert old.stat().st_mode & 0o777 == 0o600
    assert state.stat().st_mode & 0o777 == 0o700


def test_test_modules_have_unique_names():
    """pytest imports a test module under its package path, or its bare basename where
    its folder is no package: two of one name make a whole run fail at collection."""
    names: dict[str, list[str]] = {}
    for path in (REPO / "tests").rglob("test_*.py"):
        parts, folder = [path.stem], path.parent
        while (folder / "__init__.py").exists():
            parts.insert(0, folder.name)
            folder = folder.parent
        names.setdefault(".".join(parts), []).append(str(path.relative_to(REPO)))
    assert {n: p for n, p in names.items() if len(p) > 1} == {}
