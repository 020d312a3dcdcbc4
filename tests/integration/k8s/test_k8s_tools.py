"""The render, checked by the real tools offline: `kubectl kustomize` builds the folder
(and keeps every manifest and the dashboards' bytes), `promtool` checks the
PrometheusRule's groups and runs the project's rule tests against them, and compose
v2 reads the Open WebUI settings the ConfigMap carries (change one: both change)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stackctl.config import settings
from stackctl.k8s import k8s_render
from stackctl.k8s import sources as sources_mod
from tests.unit.k8s.k8s_checks import (
    REPO,
    UPSTREAMS,
    by_kind,
    copy_sources,
    docs,
    load_all,
    validate_object,
)

GW = "registry.example.com/foundry-chat/gateway:0.1.0"
COMPOSE_V2 = Path(sys.executable).parent / "docker-compose"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found — install it (kubectl ≥ 1.27 for kustomize; Debian: apt install prometheus)"
    return path


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "k8s"
    k8s_render(out, "chat-prod", UPSTREAMS, gateway_image=GW, root=REPO)
    return out


def _files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}


def test_kubectl_kustomize_builds_the_folder_unchanged(out):
    cp = subprocess.run([_tool("kubectl"), "kustomize", str(out)], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    built = load_all(cp.stdout)
    rendered = [d for _, d in _docs(out)]
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(built, key=key) == sorted(rendered, key=key)
    assert [p for d in built for p in validate_object(d)] == []
    for p in sorted((REPO / settings.GRAFANA_DASHBOARDS).glob("*.json")):
        (cm,) = [d for d in built if d["kind"] == "ConfigMap" and p.name in d.get("data", {})]
        assert cm["data"][p.name].encode() == p.read_bytes()


def _docs(out: Path):
    return docs(_files(out))


def _extract_rules(out: Path, dst: Path) -> Path:
    (rule,) = by_kind(_files(out), "PrometheusRule")
    path = dst / "extracted.rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def test_promtool_checks_and_tests_the_extracted_rules(out, tmp_path):
    promtool = _tool("promtool")
    rules = _extract_rules(out, tmp_path)
    cp = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    tests = sorted((REPO / "prometheus" / "tests").glob("*.yml"))
    assert tests
    for t in tests:  # the project's own rule tests, run against the PrometheusRule's groups only
        doc = yaml.safe_load(t.read_text())
        doc["rule_files"] = [rules.name]
        (tmp_path / t.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    cp = subprocess.run([promtool, "test", "rules", *(t.name for t in tests)], cwd=tmp_path,
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_promtool_fails_when_a_group_goes_missing(out, tmp_path):
    """The check above can fail: drop the recording groups and the alert tests break."""
    rules = _extract_rules(out, tmp_path)
    doc = yaml.safe_load(rules.read_text())
    doc["groups"] = [g for g in doc["groups"] if not any("record" in r for r in g["rules"])]
    rules.write_text(yaml.safe_dump(doc, sort_keys=False))
    tests = sorted((REPO / "prometheus" / "tests").glob("*.yml"))
    for t in tests:
        d = yaml.safe_load(t.read_text())
        d["rule_files"] = [rules.name]
        (tmp_path / t.name).write_text(yaml.safe_dump(d, sort_keys=False))
    cp = subprocess.run([_tool("promtool"), "test", "rules", *(t.name for t in tests)], cwd=tmp_path,
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode != 0


def _compose_openwebui_env(root: Path) -> dict[str, str]:
    """Open WebUI's environment as compose v2 itself resolves it for the project at ``root``."""
    env_file = root / "k8s-test.env"
    def value(s: settings.Setting) -> str:  # files compose reads (env_file) must exist
        return s.default or ("/x" if s.key.endswith("_DIR") else
                             "/dev/null" if s.key.endswith("_FILE") else "x")

    env_file.write_text("".join(f"{s.key}={value(s)}\n" for s in settings.SETTINGS))
    cp = subprocess.run([str(COMPOSE_V2), "--project-directory", str(root), "-p", "k8sview", "--env-file",
                         str(env_file), "-f", str(root / "compose.yaml"), "config", "--format", "json"],
                        capture_output=True, text=True, timeout=60,
                        env={"PATH": os.environ["PATH"], "HOME": str(root)})
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)["services"][settings.OPENWEBUI.name]["environment"]


def test_an_open_webui_setting_changes_compose_and_the_render_together(tmp_path):
    root = copy_sources(tmp_path / "repo")
    (root / "compose.yaml").write_bytes((REPO / "compose.yaml").read_bytes())
    env = root / sources_mod.OPENWEBUI_ENV
    views = []
    for text in (env.read_text(), env.read_text().replace("ENABLE_SIGNUP=false", "ENABLE_SIGNUP=true")):
        env.write_text(text)
        out = tmp_path / f"k8s{len(views)}"
        k8s_render(out, "chat", UPSTREAMS, gateway_image=GW, root=root)
        (cm,) = [c for c in by_kind(_files(out), "ConfigMap") if c["metadata"]["name"].endswith("-settings")]
        compose = _compose_openwebui_env(root)
        assert {k: compose[k] for k in cm["data"]} == cm["data"]
        views.append(cm["data"]["ENABLE_SIGNUP"])
    assert views == ["false", "true"]
