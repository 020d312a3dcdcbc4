"""Several real Foundry hosts and a cloud behind one gateway, on one machine.

Three network namespaces play three machines: each runs the real Foundry Local
runtime with the tiny model on ITS loopback (unreachable from outside), and in
front of it the edge gateway (gateway/config.edge.yml, what ``./stack edge``
runs) on the namespace's own address with its own key. A fourth namespace holds
the "cloud": an OpenAI-compatible stand-in behind TLS wanting its own key. The
stack's gateway (the real server code, in this process) routes across them.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from foundry_gateway.upstreams import pool
from tests.integration.gateway.conftest import AUTH, sample
from tests.plugins.common import REPO, wait_for
from tests.plugins.fleet import CLOUD_MODEL, EDGE_PORT, FOUNDRY_PORT, HOSTS, Fleet, edge_key
from tests.plugins.foundry import TINY_MODEL_ID


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Fleet:
    if os.geteuid() != 0:  # not a skip: CI runs as root, and so must whoever runs this
        pytest.fail("the fleet tests make network namespaces: run the suite as root (CI does)")
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        yield f.start()
    finally:
        f.stop()


def _chat(model: str, max_tokens: int = 16, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Tell me a long story"}],
            "max_tokens": max_tokens, "temperature": 0, **extra}


def _stream(client: httpx.Client, model: str, max_tokens: int = 16) -> dict:
    """One streamed chat: status, serving upstream, whether content arrived, a clean end."""
    started = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", json=_chat(model, max_tokens, stream=True)) as r:
        body = r.read().decode()
    return {"status": r.status_code, "upstream": r.headers.get("x-foundry-upstream"),
            "content": '"content"' in body, "done": body.rstrip().endswith("data: [DONE]"),
            "error": '"error"' in body, "seconds": time.monotonic() - started}


def test_edge_gateway_guards_each_host(fleet) -> None:
    h = fleet.hosts[0]
    base = f"http://{h.address}:{EDGE_PORT}"
    assert httpx.get(f"{base}/v1/models", timeout=5).status_code == 401
    ok = httpx.get(f"{base}/v1/models", timeout=5, headers={"Authorization": f"Bearer {edge_key(1)}"})
    assert ok.status_code == 200 and [m["id"] for m in ok.json()["data"]] == [TINY_MODEL_ID]
    assert httpx.post(f"{base}/shutdown", timeout=5,
                      headers={"Authorization": f"Bearer {edge_key(1)}"}).status_code == 403
    with pytest.raises(httpx.ConnectError):  # Foundry itself stays on the host's loopback
        httpx.get(f"http://{h.address}:{FOUNDRY_PORT}/status", timeout=2)


def test_union_model_list_and_requests_spread_least_busy(fleet) -> None:
    gw = fleet.gateway(fleet.hosts, "routing:\n  routes:\n    - {name: code, models: "
                       f"[\"{TINY_MODEL_ID}\", {CLOUD_MODEL}]}}\n")
    try:
        with gw.client(headers=AUTH) as c:
            ids = [m["id"] for m in c.get("/v1/models").json()["data"]]
            assert sorted(ids) == sorted([TINY_MODEL_ID, CLOUD_MODEL, "code"])  # once each
            with concurrent.futures.ThreadPoolExecutor(6) as ex:
                results = list(ex.map(lambda _: _stream(c, TINY_MODEL_ID, 64), range(12)))
        served = {f"host{h.n}": sum(r["upstream"] == f"host{h.n}" for r in results)
                  for h in fleet.hosts}
        print(f"\n12 chats, 6 at a time, across {HOSTS} hosts: {served}")
        assert all(r["status"] == 200 and r["done"] for r in results)
        assert all(n >= 2 for n in served.values()), served
        assert fleet.cloud_requests() == []  # local models stay local while hosts serve
    finally:
        gw.stop()


def test_a_host_killed_mid_run_loses_no_unstarted_request_and_rejoins(fleet) -> None:
    gw = fleet.gateway(fleet.hosts)
    victim = fleet.hosts[1]
    try:
        with gw.client(headers=AUTH) as c, concurrent.futures.ThreadPoolExecutor(3) as ex:
            futures = [ex.submit(_stream, c, TINY_MODEL_ID, 48) for _ in range(6)]
            time.sleep(0.3)
            pid = fleet.foundry_pid(victim)
            os.kill(pid, signal.SIGKILL)  # its supervisor restarts it after a back-off
            killed_at = time.monotonic()
            futures += [ex.submit(_stream, c, TINY_MODEL_ID, 48) for _ in range(24)]
            results = [f.result() for f in futures]
            # Only a request already streaming from the victim may have failed.
            lost = [r for r in results if not (r["status"] == 200 and r["done"] and not r["error"])]
            assert all(r["upstream"] == "host2" and r["content"] for r in lost), lost
            print(f"\n{len(results)} chats, host2's Foundry SIGKILLed mid-run: {len(lost)} cut "
                  "mid-stream (started on host2), the rest answered")
            m = gw.metrics()
            assert sample(m, "foundry_gateway_upstream_up", upstream="host2", kind="local") == 0
            assert sample(m, "foundry_gateway_upstream_up", upstream="host1", kind="local") == 1
            r = _stream(c, TINY_MODEL_ID)
            assert r["status"] == 200 and r["done"] and r["upstream"] != "host2"
            wait_for(lambda: sample(gw.metrics(), "foundry_gateway_upstream_up", upstream="host2",
                                    kind="local") == 1,
                     "host2 back in rotation", timeout=60, interval=0.25)
            print(f"host2 back in rotation {time.monotonic() - killed_at:.1f} s after the kill, "
                  "with no command")
            assert fleet.foundry_pid(victim) != pid
            again = [_stream(c, TINY_MODEL_ID) for _ in range(6)]
            assert any(r["upstream"] == "host2" for r in again)
    finally:
        gw.stop()


def test_cloud_fallback_and_local_only_with_every_host_down(fleet) -> None:
    routing = (f"routing:\n  cloud_fallback: {CLOUD_MODEL}\n  routes:\n"
               f"    - {{name: private, models: [\"{TINY_MODEL_ID}\"], local_only: true}}\n")
    gw = fleet.gateway(fleet.hosts[:1], routing)
    host = fleet.hosts[0]
    try:
        with gw.client(headers=AUTH) as c:
            assert _stream(c, TINY_MODEL_ID)["upstream"] == "host1"
            assert fleet.cloud_requests() == []
            host.run("ip", "link", "set", host.inner, "down")  # the host drops off the LAN
            try:
                codes = [c.post("/v1/chat/completions", json=_chat("private")).status_code
                         for _ in range(pool.OUT_AFTER + 1)]
                refused = c.post("/v1/chat/completions", json=_chat("private"))
                assert refused.status_code == 503, codes
                assert "local-only" in refused.json()["error"]["message"]
                assert fleet.cloud_requests() == []  # not one request reached the cloud
                r = c.post("/v1/chat/completions", json=_chat(TINY_MODEL_ID))
                assert r.status_code == 200 and r.headers["x-foundry-upstream"] == "cloud"
                assert r.headers["x-foundry-model"] == CLOUD_MODEL
                assert [q["model"] for q in fleet.cloud_requests()] == [CLOUD_MODEL]
            finally:
                host.run("ip", "link", "set", host.inner, "up")
    finally:
        gw.stop()


def test_one_command_offers_a_hosts_foundry(fleet, tmp_path) -> None:
    """`./stack edge` on a Foundry host (the invoke task behind it, run inside host 3): it
    generates the key into that host's .env (0600), finds Foundry, prints the two lines
    the stack's machine needs, and serves with that key."""
    host = fleet.hosts[2]
    env_file = tmp_path / ".env"
    env_file.write_text(f"FOUNDRY_LOCAL_ENDPOINT=http://127.0.0.1:{FOUNDRY_PORT}\n"
                        f"STACK_STATE_DIR={tmp_path / 'state'}\n")
    log = tmp_path / "edge-command.log"
    listen = f"{host.address}:{EDGE_PORT + 1}"
    proc = host.spawn([str(Path(sys.executable).parent / "invoke"), "-r", str(REPO), "edge",
                       "--listen", listen, "--name", "desk3"], log,
                      {"STACK_ENV_FILE": str(env_file), "NO_COLOR": "1", "COLUMNS": "200",
                       "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        wait_for(lambda: httpx.get(f"http://{listen}/healthz", timeout=1).status_code == 200,
                 "the edge command's gateway", timeout=30, interval=0.2)
        out = log.read_text()
        key = next(ln.split("=", 1)[1].strip() for ln in out.splitlines()
                   if ln.strip().startswith("EDGE_DESK3_KEY="))
        assert f"EDGE_API_KEY={key}" in env_file.read_text().replace("'", "")
        assert env_file.stat().st_mode & 0o777 == 0o600
        assert f'- {{name: desk3, url: "http://{listen}", api_key_env: EDGE_DESK3_KEY}}' in out
        assert httpx.get(f"http://{listen}/v1/models", timeout=5).status_code == 401
        ok = httpx.get(f"http://{listen}/v1/models", timeout=5,
                       headers={"Authorization": f"Bearer {key}"})
        assert [m["id"] for m in ok.json()["data"]] == [TINY_MODEL_ID]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
