"""Three Foundry hosts and a cloud on one machine (network namespaces), for the fleet tests.

Each host namespace runs the real Foundry Local runtime with the tiny model on ITS
loopback (unreachable from outside), supervised as ``./stack foundry.serve`` runs
it, and in front of it the edge gateway (gateway/config.edge.yml, what ``./stack
edge`` runs) on the namespace's own address with its own key. A fourth namespace
holds the "cloud": an OpenAI-compatible stand-in behind TLS wanting its own key.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
from pathlib import Path

import httpx

from foundry_gateway.config import load_config
from stackctl.foundry import state as foundry_state
from stackctl.foundry.paths import FoundryPaths
from tests.integration.gateway.conftest import KEY, RunningGateway
from tests.plugins.common import REPO, wait_for
from tests.plugins.foundry import TINY_MODEL_ID
from tests.plugins.netns import Host

EDGE_PORT, FOUNDRY_PORT = 9180, 5273
CLOUD_KEY = "cloud-key-0123456789abcdef"
CLOUD_MODEL = "gpt-standin"
HOSTS = 3
EDGE_CONFIG = REPO / "gateway" / "config.edge.yml"

# The embedded server as `./stack foundry.serve` runs it: supervised (restarted after a crash).
_SERVE = """
import sys
from pathlib import Path
from stackctl.foundry import serve
from tests.plugins.foundry import TINY_MODEL_ALIAS, TINY_MODEL_DIR
serve(Path(sys.argv[1]), port=int(sys.argv[2]), model_path=str(TINY_MODEL_DIR),
      name=TINY_MODEL_ALIAS, supervise=True)
"""


def edge_key(n: int) -> str:
    return f"edge-{n}-key-0123456789abcdef"


class Fleet:
    def __init__(self, root: Path) -> None:
        tag = str(os.getpid() % 10000)
        self.root = root
        self.hosts = [Host(n, tag) for n in range(1, HOSTS + 1)]
        self.cloud_host = Host(HOSTS + 1, tag)

    def state_dir(self, host: Host) -> Path:
        return self.root / host.name / "foundry"

    def start(self) -> Fleet:
        for host in [*self.hosts, self.cloud_host]:
            host.create()
        serving = []
        for host in self.hosts:  # the Foundry servers start in parallel (each ~5-10 s)
            self.state_dir(host).mkdir(parents=True)
            serving.append((host, host.spawn([sys.executable, "-c", _SERVE, str(self.state_dir(host)),
                                              str(FOUNDRY_PORT)], self.root / f"{host.name}-serve.log",
                                             {"PYTHONPATH": os.pathsep.join(sys.path)})))
        for host, proc in serving:
            if proc.wait(180) != 0:
                raise RuntimeError(f"Foundry in {host.name} did not start: "
                                   + (self.root / f"{host.name}-serve.log").read_text()[-2000:])
        for host in self.hosts:
            host.spawn([sys.executable, "-m", "foundry_gateway", "--config", str(EDGE_CONFIG),
                        "--listen-address", f"{host.address}:{EDGE_PORT}"],
                       self.root / f"{host.name}-edge.log",
                       {"EDGE_API_KEY": edge_key(host.n),
                        "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{FOUNDRY_PORT}/catalogs/local",
                        "GATEWAY_UPSTREAM_FOLLOW": "true",
                        "PYTHONPATH": os.pathsep.join(sys.path)})
        for host in self.hosts:
            wait_for(lambda h=host: httpx.get(f"http://{h.address}:{EDGE_PORT}/healthz",
                                              timeout=1).status_code == 200,
                     f"edge gateway in {host.name}", timeout=30, interval=0.2)
        # The cloud: a socket belongs to the namespace of the process that creates it,
        # so the stand-in runs as a child process inside its namespace.
        self.cloud_proc = self.cloud_host.spawn(
            [sys.executable, "-m", "tests.plugins.openai_standin", "--host", self.cloud_host.address,
             "--port", "8443", "--key", CLOUD_KEY, "--model", CLOUD_MODEL,
             "--tls-dir", str(self.root), "--count-file", str(self.root / "cloud-requests.json")],
            self.root / "cloud.log", {"PYTHONPATH": os.pathsep.join(sys.path)})
        wait_for(lambda: (self.root / "cloud-ca.pem").exists() and self._cloud_answers(),
                 "cloud stand-in", timeout=30, interval=0.2)
        return self

    def _cloud_answers(self) -> bool:
        try:
            httpx.get(f"https://{self.cloud_host.address}:8443/v1/models", timeout=1,
                      verify=ssl.create_default_context(cafile=str(self.root / "cloud-ca.pem")))
        except httpx.HTTPError:
            return False
        return True

    def cloud_requests(self) -> list[dict]:
        path = self.root / "cloud-requests.json"
        return json.loads(path.read_text()) if path.exists() else []

    def foundry_pid(self, host: Host) -> int:
        live, _ = foundry_state.read_live(FoundryPaths(self.state_dir(host)))
        assert live is not None, f"no live Foundry in {host.name}"
        return live.pid

    def config_yaml(self, hosts: list[Host], routing: str = "", cloud: bool = True) -> str:
        lines = ["upstreams:"]
        for h in hosts:
            lines.append(f"  - {{name: host{h.n}, url: \"http://{h.address}:{EDGE_PORT}\", "
                         f"api_key_env: EDGE_{h.n}_KEY, models: [\"{TINY_MODEL_ID}\"]}}")
        if cloud:
            lines.append(f"  - {{name: cloud, kind: cloud, url: \"https://{self.cloud_host.address}:8443\", "
                         f"api_key_env: CLOUD_KEY, models: [{CLOUD_MODEL}], "
                         f"ca_file: \"{self.root / 'cloud-ca.pem'}\"}}")
        return "\n".join(lines) + "\n" + routing

    def gateway(self, hosts: list[Host], routing: str = "", cloud: bool = True) -> RunningGateway:
        path = self.root / f"central-{time.monotonic_ns()}.yml"
        path.write_text(self.config_yaml(hosts, routing, cloud))
        env = {"GATEWAY_API_KEY": KEY, "CLOUD_KEY": CLOUD_KEY,
               **{f"EDGE_{h.n}_KEY": edge_key(h.n) for h in self.hosts}}
        return RunningGateway(load_config(path, environ=env)).start()

    def stop(self) -> None:
        for host in [*self.hosts, self.cloud_host]:
            host.delete()
