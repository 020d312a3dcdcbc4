"""The rendered folder, checked offline: every manifest valid for its schema, and every
piece equal to the compose stack's own source (rules, dashboards, Open WebUI settings,
configs, images), secrets only referenced, pods hardened."""

from __future__ import annotations

import copy
import glob
from pathlib import Path

import pytest
import yaml

from stackctl.config import envfile, settings
from stackctl.k8s import helm, manifests, parse_upstreams, read_sources
from stackctl.k8s import sources as sources_mod
from stackctl.k8s.render import render
from tests.unit.k8s.k8s_checks import (
    FIXTURES,
    REPO,
    UPSTREAMS,
    by_kind,
    chart_values,
    docs,
    unknown_chart_keys,
    validate_object,
)

NS = "chat-prod"
SHAPES = {"two-ipv4": UPSTREAMS, "ipv6": "http://[fd00::5]:5273",
          "dns+path": "http://foundry.lab.example.com:52180/catalogs/local"}


@pytest.fixture(scope="module")
def src():
    return read_sources(REPO, gateway_image="registry.example.com/foundry-chat/gateway:0.1.0")


@pytest.fixture(scope="module")
def files(src):
    return render(src, NS, parse_upstreams(UPSTREAMS), "./stack k8s-render")


@pytest.mark.parametrize("shape", SHAPES)
def test_every_manifest_passes_its_schema_strictly(src, shape):
    out = render(src, NS, parse_upstreams(SHAPES[shape]), "./stack k8s-render")
    objs = docs(out)
    assert {d["kind"] for _, d in objs} >= {"Deployment", "Service", "ServiceAccount", "ConfigMap",
                                            "ServiceMonitor", "PrometheusRule"}
    problems = [p for _, d in objs for p in validate_object(d)]
    assert problems == []
    assert all(d["metadata"]["namespace"] == NS for _, d in objs)


def test_the_validators_refuse_what_a_cluster_would(files):
    dep = copy.deepcopy(by_kind(files, "Deployment")[0])
    dep["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    mon = copy.deepcopy(by_kind(files, "ServiceMonitor")[0])
    mon["spec"]["endpoints"][0]["intervall"] = "15s"
    rule = copy.deepcopy(by_kind(files, "PrometheusRule")[0])
    rule["spec"]["groups"][0]["rules"][0]["for"] = 5
    for bad in (dep, mon, rule):
        assert validate_object(bad), bad["kind"]


def test_the_prometheusrule_carries_exactly_the_rule_groups(files):
    paths = sorted(glob.glob(str(REPO / sources_mod.RULES_GLOB)))
    groups = [g for p in paths for g in yaml.safe_load(Path(p).read_text())["groups"]]
    (rule,) = by_kind(files, "PrometheusRule")
    assert rule["spec"]["groups"] == groups
    assert {r.get("alert") or r.get("record") for g in groups for r in g["rules"]} \
        == {r.get("alert") or r.get("record") for g in rule["spec"]["groups"] for r in g["rules"]}


def test_one_configmap_per_dashboard_holding_its_exact_bytes(files):
    dashboards = sorted((REPO / settings.GRAFANA_DASHBOARDS).glob("*.json"))
    maps = {next(iter(cm["data"])): cm for cm in by_kind(files, "ConfigMap")
            if cm["metadata"]["labels"].get(manifests.DASHBOARD_LABEL) == "1"}
    assert sorted(maps) == [p.name for p in dashboards]
    for p in dashboards:
        assert maps[p.name]["data"][p.name].encode("utf-8") == p.read_bytes(), p.name


def test_open_webui_gets_exactly_the_settings_compose_gives_it(files):
    compose_view = envfile.values(envfile.read(REPO / sources_mod.OPENWEBUI_ENV))
    (cm,) = [c for c in by_kind(files, "ConfigMap") if c["metadata"]["name"].endswith("-settings")]
    assert cm["data"] == compose_view
    values = yaml.safe_load(files[helm.VALUES_FILE])
    assert values["extraEnvFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}]
    assert not {e["name"] for e in values["extraEnvVars"]} & set(compose_view)


def test_exporter_and_gateway_run_their_stack_config_verbatim(files, src):
    for prog, path in ((src.exporter, settings.EXPORTER_CONFIG), (src.gateway, sources_mod.GATEWAY_CONFIG)):
        (cm,) = [c for c in by_kind(files, "ConfigMap") if c["metadata"]["name"] == f"{prog.name}-config"]
        assert list(cm["data"].values()) == [(REPO / path).read_text()]
        (dep,) = [d for d in by_kind(files, "Deployment") if d["metadata"]["name"] == prog.name]
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
        assert c["args"][:2] == ["--config", f"{mount['mountPath']}/{next(iter(cm['data']))}"]
        assert next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]["name"] == f"{prog.name}-config"


def test_images_are_the_pinned_ones(files, src):
    images = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
              for d in by_kind(files, "Deployment")}
    assert images[src.exporter.name] == settings.BY_KEY[settings.EXPORTER.image_key].default
    assert images[src.gateway.name] == "registry.example.com/foundry-chat/gateway:0.1.0"
    values = yaml.safe_load(files[helm.VALUES_FILE])
    assert f"{values['image']['repository']}:{values['image']['tag']}" \
        == settings.BY_KEY[settings.OPENWEBUI.image_key].default
    pushed = read_sources(REPO, gateway_image="gw:1", registry="registry.example.com/team/")
    assert pushed.exporter.image == "registry.example.com/team/" + settings.BY_KEY[settings.EXPORTER.image_key].default


def test_helm_values_use_only_keys_the_pinned_chart_defines(files):
    chart = yaml.safe_load((FIXTURES / "open-webui-chart" / "Chart.yaml").read_text())
    assert chart["name"] == helm.CHART and chart["version"] == helm.CHART_VERSION
    values = yaml.safe_load(files[helm.VALUES_FILE])
    assert unknown_chart_keys(values, chart_values()) == []
    assert sorted(unknown_chart_keys({**values, "ollamaa": {}, "websocket": {"redis": {"enbled": True}}},
                                     chart_values())) == ["ollamaa", "websocket.redis.enbled"]


def test_helm_values_say_what_the_issue_asks(files, src):
    v = yaml.safe_load(files[helm.VALUES_FILE])
    assert v["ollama"]["enabled"] is False and v["pipelines"]["enabled"] is False
    assert v["persistence"]["enabled"] is True
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert v[probe]["httpGet"]["path"] == "/health"
    assert v["openaiBaseApiUrl"] == f"http://{src.gateway.name}.{NS}.svc.cluster.local:{src.gateway.port}/v1"
    # the gateway's Service answers there
    svc = next(s for s in by_kind(files, "Service") if s["metadata"]["name"] == src.gateway.name)
    assert svc["spec"]["ports"][0]["port"] == src.gateway.port
    assert v["openaiApiKey"] == "" and v["openaiApiKeyExistingSecret"] == manifests.SECRET
    assert v["service"]["port"] == settings.OPENWEBUI.container_port  # the exporter's config reaches it unchanged
    assert v["fullnameOverride"] == settings.OPENWEBUI.name
    head = files[helm.VALUES_FILE].split("\nfullnameOverride")[0]
    for word in ("Postgres", "DATABASE_URL", "Redis", "websocket.manager", "ReadWriteMany", "replicaCount"):
        assert word in head


def test_secrets_are_referenced_never_written(files, src):
    secret_keys = {*settings.SECRET_KEYS, src.gateway.key_env, *helm.SECRET_ENV}
    values = yaml.safe_load(files[helm.VALUES_FILE])
    envs = [e for d in by_kind(files, "Deployment") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]]
    envs += values["extraEnvVars"]
    named = [e for e in envs if e["name"] in secret_keys or e["name"].endswith("_API_KEY")]
    assert named and all("value" not in e and e["valueFrom"]["secretKeyRef"]["name"] == manifests.SECRET
                         for e in named)
    assert not by_kind(files, "Secret")


def test_pods_are_hardened_and_probed(files):
    deps = by_kind(files, "Deployment")
    accounts = {a["metadata"]["name"]: a for a in by_kind(files, "ServiceAccount")}
    assert len(deps) == 2
    for d in deps:
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        sc = c["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] is True and sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert c[probe]["httpGet"]["path"] == "/healthz"
        assert pod["automountServiceAccountToken"] is False
        assert accounts[pod["serviceAccountName"]]["automountServiceAccountToken"] is False


def test_service_monitors_keep_compose_job_names(files, src):
    prom = yaml.safe_load((REPO / sources_mod.PROMETHEUS_CONFIG).read_text())
    target = f"{settings.EXPORTER.name}:{settings.EXPORTER.container_port}"
    job = next(j["job_name"] for j in prom["scrape_configs"]
               if target in j["static_configs"][0]["targets"])
    monitors = {m["metadata"]["name"]: m for m in by_kind(files, "ServiceMonitor")}
    assert set(monitors) == {src.exporter.name, src.gateway.name} and src.exporter.name == job
    services = {s["metadata"]["name"]: s for s in by_kind(files, "Service")}
    for name, m in monitors.items():
        # the job label is the selected Service's name label: the rules' job="…" match as in compose
        assert services[name]["metadata"]["labels"][m["spec"]["jobLabel"]] == name
        assert m["spec"]["selector"]["matchLabels"].items() <= services[name]["metadata"]["labels"].items()
    auth = monitors[src.gateway.name]["spec"]["endpoints"][0].get("authorization")
    assert (auth == {"type": "Bearer", "credentials": {"name": manifests.SECRET, "key": src.gateway.key_env}}) \
        == src.gateway.metrics_need_key


def test_foundry_outside_the_cluster_is_a_service(src):
    ips = render(src, NS, parse_upstreams(UPSTREAMS), "x")
    (svc,) = [s for s in by_kind(ips, "Service") if s["metadata"]["name"] == manifests.UPSTREAM]
    (eps,) = by_kind(ips, "EndpointSlice")
    assert "selector" not in svc["spec"]
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == manifests.UPSTREAM
    assert [a for e in eps["endpoints"] for a in e["addresses"]] == ["10.0.0.5", "10.0.0.6"]
    assert eps["ports"][0]["port"] == svc["spec"]["ports"][0]["port"] == 52180
    dns = render(src, NS, parse_upstreams(SHAPES["dns+path"]), "x")
    (ext,) = [s for s in by_kind(dns, "Service") if s["metadata"]["name"] == manifests.UPSTREAM]
    assert ext["spec"]["type"] == "ExternalName" and ext["spec"]["externalName"] == "foundry.lab.example.com"
    assert not by_kind(dns, "EndpointSlice")
    gw = next(d for d in by_kind(dns, "Deployment") if d["metadata"]["name"] == src.gateway.name)
    env = {e["name"]: e.get("value") for e in gw["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[src.gateway.url_env] == f"http://{manifests.UPSTREAM}.{NS}.svc.cluster.local:52180/catalogs/local"


def test_the_kustomization_lists_every_manifest_and_only_those(files):
    kustom = yaml.safe_load(files["kustomization.yaml"])
    assert kustom["namespace"] == NS
    assert set(kustom["resources"]) == set(files) - {"kustomization.yaml", helm.VALUES_FILE, "README.md"}


def test_the_values_free_form_parts_are_valid_pod_fields(files):
    """The chart copies probes, resources, securityContext and env into its pod as they are:
    checked as a Pod strictly, so a typo there fails here and not in the cluster."""
    v = yaml.safe_load(files[helm.VALUES_FILE])
    container = {"name": "open-webui-values", "image": f"{v['image']['repository']}:{v['image']['tag']}",
                 "ports": [{"name": "http", "containerPort": v["service"]["containerPort"]}],
                 "env": v["extraEnvVars"], "envFrom": v["extraEnvFrom"], "resources": v["resources"],
                 "securityContext": v["containerSecurityContext"],
                 **{p: v[p] for p in ("livenessProbe", "readinessProbe", "startupProbe")}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "values"}, "spec": {"containers": [container]}}
    assert validate_object(pod) == []
    pod["spec"]["containers"][0]["startupProbe"]["httpGet"]["pth"] = "/health"
    assert validate_object(pod)


def test_user_names_are_forwarded_only_when_asked(src):
    def forwarded(**kw):
        v = yaml.safe_load(render(src, NS, parse_upstreams(UPSTREAMS), "x", **kw)[helm.VALUES_FILE])
        return next(e["value"] for e in v["extraEnvVars"] if e["name"] == "ENABLE_FORWARD_USER_INFO_HEADERS")

    assert forwarded() == "false"
    assert forwarded(per_user=True) == str(src.gateway.per_user).lower()


def test_every_job_the_rules_and_dashboards_name_is_scraped_under_that_name(files):
    """Rules and dashboards select jobs by compose's names (up{job="…"}); a ServiceMonitor's
    job is its Service's name label. Prometheus' own job is kube-prometheus-stack's (README)."""
    import re

    texts = [p.read_text() for p in sorted(REPO.glob(sources_mod.RULES_GLOB))]
    texts += [p.read_text() for p in sorted((REPO / settings.GRAFANA_DASHBOARDS).glob("*.json"))]
    named = {m for t in texts for m in re.findall(r'job=\\?"([^"\\]+)\\?"', t)} - {"prometheus"}
    assert named
    scraped = {m["metadata"]["labels"][m["spec"]["jobLabel"]] for m in by_kind(files, "ServiceMonitor")}
    assert named <= scraped
