"""Values for the official open-webui Helm chart, from the stack's own Open WebUI settings.

The chart is pinned (CHART_VERSION); the unit tests check every key written here
against that version's vendored values.yaml. Open WebUI's settings are not
copied into the values: the pod reads openwebui/openwebui.env's ConfigMap
(envFrom), so there is one source. Secrets are referenced, never written.
"""

from __future__ import annotations

from stackctl.config import settings
from stackctl.k8s.manifests import SECRET, gateway_url, secret_env
from stackctl.k8s.sources import Sources

CHART = "open-webui"  # same word, another fact: the chart's name and its release
CHART_REPO = "https://helm.openwebui.com/"
CHART_VERSION = "16.0.0"
VALUES_FILE = "open-webui.values.yaml"
# The Secret's keys for Open WebUI are the .env keys compose reads them from.
SECRET_ENV = ("WEBUI_SECRET_KEY", "WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD")

HEADER = """\
# Values for the official open-webui chart {version} ({repo}), rendered by
# `{command}` from openwebui/openwebui.env and stackctl/config/settings.py.
# Install: helm upgrade --install {release} open-webui/open-webui --version {version} \\
#            --namespace {ns} -f {file}
#
# One replica, SQLite on the PVC, in-memory websockets: what compose runs.
# More than one replica needs, before raising replicaCount:
#   - Postgres: a DATABASE_URL entry in extraEnvVars taken from a Secret
#     (valueFrom.secretKeyRef; never databaseUrl, which is written inline);
#   - Redis for websockets: websocket.manager: redis with websocket.existingSecret
#     (a redis:// URL; or websocket.redis.enabled: true for the chart's own);
#   - shared files: persistence.accessModes [ReadWriteMany] or persistence.provider s3/gcs/azure;
#   - an external vector DB (VECTOR_DB + its URL in extraEnvVars; the default
#     Chroma lives inside each pod).
# See https://docs.openwebui.com/getting-started/advanced-topics/scaling/
"""


def values(ns: str, src: Sources, per_user: bool = False) -> dict:
    repo, _, tag = src.openwebui_image.rpartition(":")
    port = settings.OPENWEBUI.container_port
    health = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3}
    return {
        # The Service is named like compose's service, on the same port, so the
        # exporter's stack config reaches it unchanged.
        "fullnameOverride": settings.OPENWEBUI.name,
        "ollama": {"enabled": False},
        "pipelines": {"enabled": False},
        "image": {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"},
        "replicaCount": 1,
        "websocket": {"enabled": True, "manager": "", "redis": {"enabled": False}},
        "service": {"type": "ClusterIP", "port": port, "containerPort": port},
        "persistence": {"enabled": True, "size": "10Gi", "accessModes": ["ReadWriteOnce"], "provider": "local"},
        "enableOpenaiApi": True,
        "openaiBaseApiUrl": f"{gateway_url(ns, src)}/v1",
        "openaiApiKey": "",
        "openaiApiKeyExistingSecret": SECRET,
        "openaiApiKeyExistingSecretKey": src.gateway.key_env,
        "extraEnvFrom": [{"configMapRef": {"name": f"{settings.OPENWEBUI.name}-settings"}}],
        "extraEnvVars": [*(secret_env(k, k) for k in SECRET_ENV),
                         # The gateway counts per user only from Open WebUI's forwarded user
                         # headers; off unless asked (user names become metric labels), as in compose.
                         {"name": "ENABLE_FORWARD_USER_INFO_HEADERS",
                          "value": str(per_user and src.gateway.per_user).lower()}],
        # compose: healthy within start_period 120 s; here the startup probe allows 150 s.
        "startupProbe": {**health, "periodSeconds": 5, "failureThreshold": 30},
        "readinessProbe": {**health, "failureThreshold": 3},
        "livenessProbe": {**health, "failureThreshold": 6},
        "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
        # As in compose: root in its image (it writes into its package folder at start),
        # every capability dropped, no privilege escalation.
        "containerSecurityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                                     "capabilities": {"drop": ["ALL"]},
                                     "seccompProfile": {"type": "RuntimeDefault"}},
        "serviceAccount": {"enable": True, "create": True, "automountServiceAccountToken": False},
    }


def header(ns: str, command: str) -> str:
    return HEADER.format(version=CHART_VERSION, repo=CHART_REPO, command=command, release=CHART,
                         ns=ns, file=VALUES_FILE)
