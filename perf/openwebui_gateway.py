"""Benchmark: a chat through Open WebUI, direct to Foundry vs through the gateway, one run.

On a throwaway stack (own compose project, ports, state dir; images as the e2e tier
gets them): `invoke up` (Open WebUI → gateway → the embedded Foundry, tiny model).
Then a second embedded Foundry serving the same model is started on the Docker bridge
address — the way the stack reached Foundry before the gateway — and added to Open
WebUI as a second connection (prefix ``direct``). Requests alternate: the same
16-token non-streamed chat through Open WebUI's API, once per path, each timed from
request to complete answer. Open WebUI keeps pooled (kept-alive) connections to each
upstream, which is where Foundry's Nagle × delayed-ACK stall bit (about 40 ms per
request, see ../shared/ARCHITECTURE.md); the gateway avoids it. Numbers, not asserts.

    .venv/bin/python perf/openwebui_gateway.py [--pairs 40] [--max-tokens 16] [--stream]
"""

from __future__ import annotations

import _venv  # stdlib only: re-runs this script in the project's venv if needed

_venv.ensure()

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stackctl import openwebui
from stackctl.foundry import bridge, lifecycle
from stackctl.foundry.urls import container_url
from tests.e2e.images.build import ensure_images
from tests.plugins.common import free_port
from tests.plugins.foundry import TINY_MODEL_DIR
from tests.plugins.stack import STACK_MODEL_ID, E2EStack, write_env

PREFIX = "direct"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def chat_seconds(ui: openwebui.OpenWebUI, model: str, max_tokens: int, stream: bool = False) -> float:
    t0 = time.perf_counter()
    r = ui.post("/api/chat/completions", timeout=60, json={  # a stream is read to its end
        "model": model, "stream": stream, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Tell me about lighthouses."}]})
    took = time.perf_counter() - t0
    if r.status_code != 200:
        raise SystemExit(f"{model}: HTTP {r.status_code} {r.text[:200]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=40, help="alternating request pairs (after 5 warm-up pairs)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--stream", action="store_true", help="streamed chats (SSE read to the end)")
    args = ap.parse_args()
    gw = bridge.gateway_ip()
    if not gw:
        raise SystemExit("no Docker bridge address found: this benchmark needs Linux Docker Engine")
    sys.stderr.write = lambda *a, **k: 0  # keep E2EStack's transcript out of the table
    images = ensure_images(progress=lambda msg: None)
    root = Path(tempfile.mkdtemp(prefix="bench-owui-gateway-"))
    s = E2EStack(root / ".env", root / "state")
    write_env(s.env_file, s.state_dir, {k: v for k, v in images.items() if k.endswith("_IMAGE")})
    direct_state = root / "direct-foundry"
    try:
        cp = s.invoke("up", timeout=1500)
        if cp.returncode:
            raise SystemExit(f"invoke up failed:\n{cp.stdout}\n{cp.stderr}")
        direct = lifecycle.serve(direct_state, port=free_port(), model_path=str(TINY_MODEL_DIR),
                                 name=STACK_MODEL_ID.split("-generic")[0], host=gw)
        env = s.env
        ui = openwebui.login(openwebui.OpenWebUI(s.url("OPENWEBUI_PORT")), env["WEBUI_ADMIN_EMAIL"],
                             env["WEBUI_ADMIN_PASSWORD"], s.state_dir)
        cfg = ui.openai_config()
        cfg["OPENAI_API_BASE_URLS"] = [*cfg["OPENAI_API_BASE_URLS"][:1], container_url(direct.chat_base_url)]
        cfg["OPENAI_API_KEYS"] = [*cfg["OPENAI_API_KEYS"][:1], ""]
        cfg["OPENAI_API_CONFIGS"] = {**cfg.get("OPENAI_API_CONFIGS", {}), "1": {"enable": True, "prefix_id": PREFIX}}
        ui.update_openai_config(cfg)
        models = ui.models(refresh=True)
        through, straight = STACK_MODEL_ID, f"{PREFIX}.{direct.model_id}"
        if through not in models or straight not in models:
            raise SystemExit(f"Open WebUI offers {models}, expected {through} and {straight}")
        for _ in range(5):
            chat_seconds(ui, through, args.max_tokens, args.stream)
            chat_seconds(ui, straight, args.max_tokens, args.stream)
        times: dict[str, list[float]] = {"direct": [], "gateway": []}
        for i in range(args.pairs):
            order = (("direct", straight), ("gateway", through)) if i % 2 else (("gateway", through), ("direct", straight))
            for name, model in order:
                times[name].append(chat_seconds(ui, model, args.max_tokens, args.stream))
    finally:
        if direct_state.exists():
            with contextlib.suppress(Exception):
                lifecycle.stop(direct_state)
        s.invoke("down", "--volumes", "--yes", timeout=300)
    d, g = times["direct"], times["gateway"]
    print(f"{args.max_tokens}-token {'streamed ' if args.stream else ''}chat through Open WebUI's API, "
          f"{args.pairs} alternating pairs, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'path':<34}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for name, vals in (("Open WebUI → Foundry (direct)", d), ("Open WebUI → gateway → Foundry", g)):
        print(f"{name:<34}{pct(vals, 0.5) * 1e3:>10.1f}{pct(vals, 0.95) * 1e3:>10.1f}"
              f"{statistics.mean(vals) * 1e3:>10.1f}")
    print(f"{'gateway - direct (p50)':<34}{(pct(g, 0.5) - pct(d, 0.5)) * 1e3:>+10.1f} ms   "
          f"ratio gateway/direct {pct(g, 0.5) / pct(d, 0.5):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
