"""The exporter runs as the image's uid with nothing writable: no HOME, cwd "/" (issue 13, item 12)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from tests.integration.exporter.faultserver import FaultServer
from tests.plugins.common import REPO, free_port, wait_for
from tests.unit.exporter.test_exporter_dockerfile import UID


def test_exporter_serves_as_uid_10001_without_a_writable_directory(fault_server: FaultServer) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:  # readable by uid 10001, not writable
        os.chmod(tmp, 0o755)
        config = Path(tmp) / "config.yml"
        config.write_text(f"targets: [{{name: f, kind: foundry, url: '{fault_server.url('ok')}'}}]\n")
        os.chmod(config, 0o444)
        # The package as the image holds it, readable by the uid whatever the checkout's
        # own permissions are (a CI clone may sit in a 0700 temporary directory).
        pkg = Path(tmp) / "pkg"
        shutil.copytree(REPO / "exporter" / "foundry_exporter", pkg / "foundry_exporter")
        for d in (pkg, *pkg.rglob("*")):
            os.chmod(d, 0o755 if d.is_dir() else 0o644)
        port = free_port()
        proc = subprocess.Popen(
            # setpriv (util-linux) drops to the uid; Popen(user=) is refused in some sandboxes.
            ["setpriv", "--reuid", UID, "--regid", UID, "--clear-groups", sys.executable,
             "-m", "foundry_exporter", "--config", str(config), "--listen-address",
             f"127.0.0.1:{port}"],
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1",
                 "PYTHONPATH": str(pkg)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: proc.poll() is None and httpx.get(f"{base}/healthz").status_code == 200,
                     "/healthz 200 as uid " + UID, timeout=20, interval=0.1)
            # /healthz answers before the first probe has finished: wait for its sample
            wait_for(lambda: 'foundry_up{kind="foundry",target="f"} 1.0' in httpx.get(f"{base}/metrics").text,
                     "a successful probe as uid " + UID, timeout=60, interval=0.2)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            assert f"Uid:\t{UID}\t{UID}\t{UID}\t{UID}" in status
        finally:
            proc.kill()
            output = proc.communicate(timeout=10)[0]
        assert "Error" not in output and "Permission" not in output, output
