"""Kubernetes objects for the parts of the stack no official chart ships: pure builders.

The exporter and the gateway run as in compose (their stack config verbatim, the
same health endpoint, no root, no capabilities, a read-only root filesystem); the
Prometheus Operator gets a ServiceMonitor for each and the rule groups of
prometheus/rules/ as one PrometheusRule; Grafana's dashboard sidecar gets one
ConfigMap per generated dashboard; Foundry, outside the cluster, gets a Service.
"""

from __future__ import annotations

import hashlib

from stackctl.config import settings
from stackctl.k8s.inputs import Upstream
from stackctl.k8s.sources import Program, Sources

PART_OF = settings.BY_KEY["COMPOSE_PROJECT_NAME"].default   # foundry-chat: the stack's name
SECRET = PART_OF            # the one Secret the user creates (README, Kubernetes)
UPSTREAM = "foundry-upstream"
PROM_RELEASE = "kube-prometheus-stack"  # the label its default selectors look for
JOB_LABEL = "app.kubernetes.io/name"
DASHBOARD_LABEL = "grafana_dashboard"
HEALTH = "/healthz"


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/managed-by": "stackctl"}


def meta(name: str, ns: str, extra: dict[str, str] | None = None) -> dict:
    return {"name": name, "namespace": ns, "labels": {**labels(name), **(extra or {})}}


def upstream_url(ns: str, up: Upstream) -> str:
    return f"http://{UPSTREAM}.{ns}.svc.cluster.local:{up.port}{up.path}"


def upstream_objects(ns: str, up: Upstream) -> list[dict]:
    """Foundry outside the cluster: ExternalName for one DNS name, else a selector-less
    Service whose EndpointSlice lists the hosts (kube-proxy balances connections)."""
    port = {"name": "http", "port": up.port, "protocol": "TCP"}
    if up.external_name:
        return [{"apiVersion": "v1", "kind": "Service", "metadata": meta(UPSTREAM, ns),
                 "spec": {"type": "ExternalName", "externalName": up.hosts[0], "ports": [port]}}]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": meta(UPSTREAM, ns),
               "spec": {"type": "ClusterIP", "ports": [{**port, "targetPort": up.port}]}}
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": meta(f"{UPSTREAM}-manual", ns, {
                  "kubernetes.io/service-name": UPSTREAM,
                  "endpointslice.kubernetes.io/managed-by": f"{PART_OF}.stackctl"}),
              "addressType": up.address_type, "ports": [port],
              "endpoints": [{"addresses": [h], "conditions": {"ready": True}} for h in up.hosts]}
    return [service, slice_]


def program_objects(ns: str, prog: Program, env: list[dict], resources: dict) -> list[dict]:
    """ConfigMap (its stack config, verbatim), ServiceAccount, Deployment, Service."""
    conf_dir, _, conf_file = prog.config_path.rpartition("/")
    args = ["--config", prog.config_path, *prog.args]
    probe = {"httpGet": {"path": HEALTH, "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 4}
    container = {
        "name": prog.name, "image": prog.image, "imagePullPolicy": "IfNotPresent", "args": args,
        "env": env, "ports": [{"name": "http", "containerPort": prog.port, "protocol": "TCP"}],
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 12},
        "readinessProbe": {**probe, "failureThreshold": 3},
        "livenessProbe": {**probe, "failureThreshold": 6},
        "resources": resources,
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "privileged": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "config", "mountPath": conf_dir, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{prog.name}-config", ns),
                  "data": {conf_file: prog.config_text}}
    checksum = hashlib.sha256(prog.config_text.encode()).hexdigest()
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(prog.name, ns),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {k: v for k, v in labels(prog.name).items() if "managed-by" not in k}},
            "template": {
                # A config change rolls the pod (a ConfigMap update alone would not).
                "metadata": {"labels": labels(prog.name), "annotations": {"checksum/config": checksum}},
                "spec": {
                    "serviceAccountName": prog.name, "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": f"{prog.name}-config"}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(prog.name, ns),
               "automountServiceAccountToken": False}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": meta(prog.name, ns),
               "spec": {"type": "ClusterIP", "selector": deployment["spec"]["selector"]["matchLabels"],
                        "ports": [{"name": "http", "port": prog.port, "targetPort": "http", "protocol": "TCP"}]}}
    return [config_map, account, deployment, service]


def gateway_url(ns: str, src: Sources) -> str:
    return f"http://{src.gateway.name}.{ns}.svc.cluster.local:{src.gateway.port}"


def secret_env(name: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}


def exporter_objects(ns: str, src: Sources, up: Upstream) -> list[dict]:
    ex = src.exporter
    if ex.key_env:  # its config sends a key: it probes Foundry through the gateway, as in compose
        env = [{"name": ex.url_env, "value": gateway_url(ns, src)}, secret_env(ex.key_env, src.gateway.key_env)]
    else:
        env = [{"name": ex.url_env, "value": upstream_url(ns, up)}]
    res = {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
    return program_objects(ns, src.exporter, env, res)


def gateway_objects(ns: str, src: Sources, up: Upstream) -> list[dict]:
    gw = src.gateway
    env = [{"name": gw.url_env, "value": upstream_url(ns, up)}, secret_env(gw.key_env, gw.key_env)]
    res = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
    return program_objects(ns, gw, env, res)


def service_monitor(ns: str, prog: Program, src: Sources) -> dict:
    endpoint: dict = {"port": "http", "path": "/metrics", "scheme": "http",
                      "interval": src.scrape_interval, "scrapeTimeout": src.scrape_timeout}
    if prog.metrics_need_key:
        endpoint["authorization"] = {"type": "Bearer", "credentials": {"name": SECRET, "key": prog.key_env}}
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": meta(prog.name, ns, {"release": PROM_RELEASE}),
            # The job label is the Service's name label: the rules' job="…" selectors match as in compose.
            "spec": {"jobLabel": JOB_LABEL, "namespaceSelector": {"matchNames": [ns]},
                     "selector": {"matchLabels": {JOB_LABEL: prog.name}}, "endpoints": [endpoint]}}


def prometheus_rule(ns: str, src: Sources) -> dict:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": meta(f"{PART_OF}-rules", ns, {"release": PROM_RELEASE}),
            "spec": {"groups": [dict(g) for g in src.rule_groups]}}


def dashboard_config_maps(ns: str, src: Sources) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": meta(f"dashboard-{name.removesuffix('.json')}", ns, {DASHBOARD_LABEL: "1"}),
             "data": {name: text}} for name, text in src.dashboards.items()]


def openwebui_settings(ns: str, src: Sources) -> dict:
    """openwebui/openwebui.env as compose reads it; the chart's pod takes it with envFrom."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(f"{settings.OPENWEBUI.name}-settings", ns), "data": dict(src.openwebui_env)}
