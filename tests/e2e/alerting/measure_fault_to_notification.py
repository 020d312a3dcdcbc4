"""Measure fault → notification with the shipped timings (README, Alerting).

A throwaway stack (own project, ports, state dir; tests/plugins/stack.py) whose
ALERT_WEBHOOK_URL points at a receiver this script runs on the Docker bridge
gateway; no test timing knob is set, so the rule's `for: 2m` and Alertmanager's
30 s group wait hold. The embedded Foundry is stopped and the time until the
"FoundryLocalDown" notification arrives is printed. Takes ~4-5 minutes; not a
test: the e2e module (test_alerts_e2e.py) runs the same real path (the rule's real
`for`, Prometheus sending to Alertmanager) but with Alertmanager's group wait cut
to 1 s by its test knob; this script keeps the shipped 30 s, as users get it.

    .venv/bin/python tests/e2e/alerting/measure_fault_to_notification.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from stackctl.foundry import bridge
from tests.e2e.helpers import exporter_sample
from tests.e2e.images import build
from tests.plugins.common import free_port, wait_for
from tests.plugins.stack import E2EStack, write_env


def main() -> int:
    got: list[tuple[float, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append((time.monotonic(), json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    gateway = bridge.gateway_ip()
    if not gateway:
        print("error: no Docker bridge gateway (is the engine running?)", file=sys.stderr)
        return 2
    port = free_port(gateway)
    server = ThreadingHTTPServer((gateway, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    images = {k: v for k, v in build.ensure_images(lambda m: None).items() if k.endswith("_IMAGE")}
    root = Path(tempfile.mkdtemp(prefix="alert-measure-"))
    s = E2EStack(root / ".env", root / "state")
    write_env(s.env_file, s.state_dir, images, ALERTMANAGER_PORT=str(free_port()),
              ALERT_WEBHOOK_URL=f"http://host.docker.internal:{port}/hook/measure")

    def notified() -> float | None:
        return next((t for t, body in got for a in body.get("alerts", [])
                     if a["labels"].get("alertname") == "FoundryLocalDown"), None)

    try:
        cp = s.invoke("up", timeout=900)
        if cp.returncode != 0:
            print(f"error: `up` failed: {cp.stderr.strip()[-300:]}", file=sys.stderr)
            return 1
        wait_for(lambda: exporter_sample(s, "foundry_up", kind="foundry") == 1.0, "foundry_up 1", timeout=120)
        t0 = time.monotonic()
        s.invoke("foundry.stop")
        t1 = wait_for(notified, "the FoundryLocalDown notification", timeout=600, interval=0.5)
        names = [a["labels"]["alertname"] for _, body in got for a in body.get("alerts", [])]
        print(f"Foundry stopped -> FoundryLocalDown notification: {t1 - t0:.1f} s "
              f"(notifications: {', '.join(names)})")
        return 0
    finally:
        s.invoke("down", "--volumes", "--yes", timeout=300)
        s.invoke("foundry.stop", timeout=120)
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
