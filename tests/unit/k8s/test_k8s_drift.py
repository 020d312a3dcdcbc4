"""One source: changing a rule, a dashboard or an Open WebUI setting in the files
compose uses changes the render, in the one place it belongs, and nothing else."""

from __future__ import annotations

import yaml

from stackctl.config import envfile, settings
from stackctl.k8s import parse_upstreams, read_sources
from stackctl.k8s import sources as sources_mod
from stackctl.k8s.render import render
from tests.unit.k8s.k8s_checks import UPSTREAMS, by_kind, copy_sources

GW = "registry.example.com/gw:1"


def _render(root):
    return render(read_sources(root, gateway_image=GW), "chat", parse_upstreams(UPSTREAMS), "x")


def _changed(before, after):
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def test_a_rule_change_reaches_the_prometheusrule_only(tmp_path):
    root = copy_sources(tmp_path)
    before = _render(root)
    path = sorted(root.glob(sources_mod.RULES_GLOB))[0]
    doc = yaml.safe_load(path.read_text())
    rule = doc["groups"][0]["rules"][0]
    rule["expr"] = f"({rule['expr']}) or vector(0)"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    after = _render(root)
    assert _changed(before, after) == ["prometheusrule.yaml"]
    (pr,) = by_kind(after, "PrometheusRule")
    assert pr["spec"]["groups"][0]["rules"][0]["expr"] == rule["expr"]


def test_a_new_rule_file_is_carried_too(tmp_path):
    root = copy_sources(tmp_path)
    (root / "prometheus" / "rules" / "zz.extra.yml").write_text(
        "groups:\n  - name: extra\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n")
    (pr,) = by_kind(_render(root), "PrometheusRule")
    assert pr["spec"]["groups"][-1]["name"] == "extra"


def test_a_dashboard_change_reaches_its_configmap_only(tmp_path):
    root = copy_sources(tmp_path)
    before = _render(root)
    dash = sorted((root / settings.GRAFANA_DASHBOARDS).glob("*.json"))[0]
    text = dash.read_text().replace('"title": "', '"title": "Changed ', 1)
    dash.write_text(text)
    after = _render(root)
    assert _changed(before, after) == [f"dashboards/dashboard-{dash.stem}.yaml"]
    (cm,) = [c for c in by_kind(after, "ConfigMap") if dash.name in c["data"]]
    assert cm["data"][dash.name] == text


def test_an_open_webui_setting_change_reaches_its_configmap_as_compose_reads_it(tmp_path):
    root = copy_sources(tmp_path)
    before = _render(root)
    env = root / sources_mod.OPENWEBUI_ENV
    env.write_text(env.read_text().replace("ENABLE_TITLE_GENERATION=true", "ENABLE_TITLE_GENERATION=false")
                   + "TASK_MODEL_EXTERNAL='tiny chat'  # quoted, with a comment\n")
    after = _render(root)
    assert _changed(before, after) == ["open-webui-settings.yaml"]
    (cm,) = [c for c in by_kind(after, "ConfigMap") if c["metadata"]["name"].endswith("-settings")]
    assert cm["data"]["ENABLE_TITLE_GENERATION"] == "false"
    assert cm["data"]["TASK_MODEL_EXTERNAL"] == "tiny chat"
    assert cm["data"] == envfile.values(envfile.read(env))


def test_a_gateway_config_change_rolls_its_pod(tmp_path):
    root = copy_sources(tmp_path)
    before = _render(root)
    cfg = root / sources_mod.GATEWAY_CONFIG
    cfg.write_text(cfg.read_text() + "models_cache_ttl: 2s\n")
    after = _render(root)
    gw = sources_mod.read_sources(root, gateway_image=GW).gateway.name
    assert _changed(before, after) == [f"{gw}.yaml"]
    sums = [next(d for d in by_kind(f, "Deployment") if d["metadata"]["name"] == gw)
            ["spec"]["template"]["metadata"]["annotations"]["checksum/config"] for f in (before, after)]
    assert sums[0] != sums[1]
