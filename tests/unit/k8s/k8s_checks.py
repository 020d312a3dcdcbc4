"""What the k8s-render tests check a rendered folder with: kubernetes-validate (strict)
for Kubernetes' own kinds, the vendored Prometheus Operator CRD schemas for its
CRs (made strict: unknown fields are errors, as with kubectl --validate=strict),
and the vendored open-webui chart values for the Helm values' keys."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from stackctl.k8s import render as render_mod

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "k8s"
CRD_FILES = {"ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
             "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml"}
UPSTREAMS = "http://10.0.0.5:52180,http://10.0.0.6:52180"


def load_all(text: str) -> list:
    return [d for d in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if d]


def docs(files: dict[str, str]) -> list[tuple[str, dict]]:
    """(file, object) for every manifest the kustomization lists."""
    kustom = yaml.safe_load(files[render_mod.KUSTOMIZATION])
    return [(name, d) for name in kustom["resources"] for d in load_all(files[name])]


def by_kind(files: dict[str, str], kind: str) -> list[dict]:
    return [d for _, d in docs(files) if d["kind"] == kind]


def _strict(schema: object) -> object:
    """The CRD's structural schema with unknown fields refused where the API server would prune them."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out \
                and not out.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    crd = yaml.safe_load((FIXTURES / "crds" / CRD_FILES[kind]).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    # metadata is the API server's (type: object only); check it is a mapping with a name.
    schema["properties"]["metadata"] = {"type": "object", "required": ["name"]}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema, format_checker=None)


def validate_object(obj: dict) -> list[str]:
    """Problems with one object ([] when valid)."""
    if obj["kind"] in CRD_FILES:
        if obj["apiVersion"] != "monitoring.coreos.com/v1":
            return [f"{obj['kind']}: apiVersion {obj['apiVersion']}"]
        return [f"{obj['kind']} {obj['metadata'].get('name')}: {e.message} at {list(e.absolute_path)}"
                for e in crd_validator(obj["kind"]).iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, render_mod.K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{obj['kind']} {obj['metadata'].get('name')}: {exc.message} at {list(exc.path)}"]
    return []


@functools.cache
def chart_values() -> dict:
    return yaml.safe_load((FIXTURES / "open-webui-chart" / "values.yaml").read_text())


def unknown_chart_keys(values: object, chart: object, path: str = "") -> list[str]:
    """Keys of ``values`` the chart does not define. Below a key whose chart default is
    an empty mapping or a list (free-form: probes, resources, env) anything goes."""
    if not isinstance(values, dict):
        return []
    if not isinstance(chart, dict):
        return [f"{path} (the chart's is not a mapping)"]
    if not chart:
        return []
    out = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if key not in chart:
            out.append(where)
        elif isinstance(chart[key], dict):
            out += unknown_chart_keys(value, chart[key], where)
    return out


def copy_sources(dst: Path) -> Path:
    """The files a render reads, copied to ``dst`` (a project root to change freely)."""
    from stackctl.config import settings
    from stackctl.k8s import sources

    rels = [sources.OPENWEBUI_ENV, settings.EXPORTER_CONFIG, sources.GATEWAY_CONFIG, sources.PROMETHEUS_CONFIG,
            settings.GRAFANA_DATASOURCES]
    rels += [str(p.relative_to(REPO)) for p in sorted(REPO.glob(sources.RULES_GLOB))]
    rels += [str(p.relative_to(REPO)) for p in sorted((REPO / settings.GRAFANA_DASHBOARDS).glob("*.json"))]
    for rel in rels:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_bytes((REPO / rel).read_bytes())
    return dst
