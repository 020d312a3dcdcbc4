"""A render: the folder of files ``k8s-render`` writes, built in memory, then written at once.

``render`` is pure (Sources + checked inputs → file name → text). ``write_tree``
writes into a fresh sibling folder and renames it into place, so OUT is either
left as it was or holds a complete render; it replaces only a folder that holds
a previous render (``--force``), never one with files of the user's.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from stackctl.errors import UsageError
from stackctl.k8s import helm, manifests
from stackctl.k8s.inputs import Upstream
from stackctl.k8s.sources import Sources

KUSTOMIZATION = "kustomization.yaml"
MARKER = "# Rendered by stackctl (k8s-render)"
K8S_VERSION = "1.32"  # what the manifests are validated against (kubectl on the build machines)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True  # no &id001 anchors: each manifest reads on its own


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None  # dashboards and configs stay readable
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(*docs: dict) -> str:
    return "---\n".join(yaml.dump(d, Dumper=_Dumper, sort_keys=False, width=1 << 16) for d in docs)


def render(src: Sources, ns: str, up: Upstream, command: str, *, per_user: bool = False) -> dict[str, str]:
    """File name (relative to OUT) → text. Everything in kustomization.yaml is a manifest;
    the chart's values file and the README are beside it."""
    files = {
        "foundry-upstream.yaml": dump(*manifests.upstream_objects(ns, up)),
        f"{src.exporter.name}.yaml": dump(*manifests.exporter_objects(ns, src, up)),
        f"{src.gateway.name}.yaml": dump(*manifests.gateway_objects(ns, src, up)),
        "servicemonitors.yaml": dump(manifests.service_monitor(ns, src.exporter, src),
                                     manifests.service_monitor(ns, src.gateway, src)),
        "prometheusrule.yaml": dump(manifests.prometheus_rule(ns, src)),
        "open-webui-settings.yaml": dump(manifests.openwebui_settings(ns, src)),
    }
    for cm in manifests.dashboard_config_maps(ns, src):
        files[f"dashboards/{cm['metadata']['name']}.yaml"] = dump(cm)
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "namespace": ns, "resources": list(files)}
    files[KUSTOMIZATION] = f"{MARKER} from {', '.join(_sources(src))}.\n# Do not edit: render again.\n" \
        + dump(kustomization)
    files[helm.VALUES_FILE] = helm.header(ns, command) + dump(helm.values(ns, src, per_user))
    files["README.md"] = _readme(src, ns, up)
    return files


def _sources(src: Sources) -> list[str]:
    from stackctl.config import settings
    from stackctl.k8s import sources

    return [sources.OPENWEBUI_ENV, settings.EXPORTER_CONFIG, sources.GATEWAY_CONFIG, *src.rule_files,
            f"{settings.GRAFANA_DASHBOARDS}/*.json", "stackctl/config/settings.py"]


def commands(src: Sources, ns: str, out: str = "OUT") -> list[str]:
    """The exact commands that deploy a render (also in its README and the project's)."""
    key = src.gateway.key_env
    gen = "$(openssl rand -base64 32)"
    return [
        f"kubectl create namespace {ns}",
        f"kubectl -n {ns} create secret generic {manifests.SECRET} "
        f"--from-literal=WEBUI_SECRET_KEY=\"{gen}\" --from-literal=WEBUI_ADMIN_EMAIL=admin@example.com "
        f"--from-literal=WEBUI_ADMIN_PASSWORD=\"{gen}\" --from-literal={key}=\"{gen}\"",
        f"kubectl apply --server-side -k {out}",
        f"helm repo add open-webui {helm.CHART_REPO} && helm repo update open-webui",
        f"helm upgrade --install {helm.CHART} open-webui/open-webui --version {helm.CHART_VERSION} "
        f"--namespace {ns} -f {out}/{helm.VALUES_FILE}",
    ]


def _readme(src: Sources, ns: str, up: Upstream) -> str:
    where = (f"ExternalName Service `{manifests.UPSTREAM}` → `{up.hosts[0]}`" if up.external_name else
             f"Service `{manifests.UPSTREAM}` with a manual EndpointSlice: {', '.join(up.hosts)}")
    lines = [
        f"# Foundry Local Chat Stack on Kubernetes (namespace `{ns}`)", "",
        "Rendered from the compose stack's own files; render again after changing them. "
        "Needs kube-prometheus-stack (Prometheus Operator + Grafana with its dashboard sidecar).", "",
        f"Foundry Local upstream: {where}, port {up.port}{', path ' + up.path if up.path else ''}.", "",
        "```sh", *commands(src, ns, "."), "```", "",
        f"Grafana: the dashboards use the datasource uid `{src.datasource_uid}`; set "
        f"`grafana.sidecar.datasources.uid={src.datasource_uid}` in kube-prometheus-stack, and "
        "`grafana.sidecar.dashboards.searchNamespace=ALL` unless Grafana runs in this namespace.", "",
    ]
    return "\n".join(lines)


def write_tree(files: dict[str, str], out: Path, *, force: bool = False) -> None:
    """Write ``files`` under ``out`` all at once (see module docstring)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file — give --out a folder (new or empty)")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent} does not exist — create it first, or choose another --out")
    replace = out.is_dir() and any(out.iterdir())
    if replace and not force:
        raise UsageError(f"{out} is not empty — choose a new or empty folder, or pass --force to replace "
                         "a previous render")
    if replace and not _is_render(out):
        raise UsageError(f"{out} holds files k8s-render did not write — choose a new or empty folder "
                         "(--force replaces only a previous render)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    old: Path | None = None
    try:
        for name, text in files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        tmp.chmod(0o755)
        if replace:
            old = out.with_name(f".{out.name}.old-{tmp.name.rpartition('-')[2]}")
            out.rename(old)
        elif out.is_dir():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not out.exists():
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _is_render(folder: Path) -> bool:
    try:
        return (folder / KUSTOMIZATION).read_text(encoding="utf-8").startswith(MARKER)
    except OSError:
        return False
