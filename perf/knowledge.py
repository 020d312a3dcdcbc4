"""Benchmark: folder sync time, and the latency a knowledge collection adds to a chat, one run.

A lone Open WebUI container (the stand-in image the e2e tier builds, the stack's
openwebui.env, a headless admin) on the host's network, whose OpenAI connection is the
embedded Foundry Local serving the tiny test model. A folder of N text files of a given
size (distinct pseudo-random English-like words under a fixed seed) is synced with
`knowledge.sync` (the library call the command makes) and timed; a second sync of the
unchanged folder is timed too. Then the same 16-token chat through Open WebUI's API
alternates with and without the collection attached, each timed from request to complete
answer: the difference is what retrieval (query embedding on CPU + vector search + the
longer prompt) adds. Numbers, not asserts.

    .venv/bin/python perf/knowledge.py [--files 50] [--kib 4] [--pairs 20]
"""

from __future__ import annotations

import _venv  # stdlib only: re-runs this script in the project's venv if needed

_venv.ensure()

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import docker

from stackctl import openwebui
from stackctl.config import envfile
from stackctl.foundry import lifecycle
from stackctl.knowledge.api import KnowledgeAPI
from stackctl.knowledge.sync import sync
from tests.e2e.images.build import ensure_images
from tests.plugins.common import wait_for
from tests.plugins.foundry import TINY_MODEL_ALIAS, TINY_MODEL_DIR
from tests.plugins.stack import E2EStack, write_env

WORDS = ("river", "stone", "harbor", "engine", "orbit", "lantern", "copper", "meadow", "signal", "garden",
         "winter", "canyon", "violin", "circuit", "glacier", "market", "pepper", "comet", "ledger", "falcon",
         "marble", "tunnel", "anchor", "ember")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def make_folder(root: Path, files: int, kib: int) -> int:
    rng = random.Random(19)
    total = 0
    for i in range(files):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < kib * 1024:
            words += [*rng.sample(WORDS, 8), "."]
        text = f"# Note {i}\n\n" + " ".join(words) + "\n"
        (root / f"note-{i:04d}.md").write_text(text)
        total += len(text)
    return total


def chat_seconds(ui: openwebui.OpenWebUI, model: str, kid: str | None) -> float:
    body = {"model": model, "stream": False, "max_tokens": 16,
            "messages": [{"role": "user", "content": "Which notes mention a copper lantern near the harbor?"}]}
    if kid:
        body["files"] = [{"type": "collection", "id": kid}]
    t0 = time.perf_counter()
    r = ui.post("/api/chat/completions", timeout=120, json=body)
    took = time.perf_counter() - t0
    if r.status_code != 200:
        raise SystemExit(f"chat: HTTP {r.status_code} {r.text[:200]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=50)
    ap.add_argument("--kib", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=20)
    args = ap.parse_args()
    image = ensure_images(progress=lambda m: None)["OPENWEBUI_IMAGE"]
    with tempfile.TemporaryDirectory(prefix="perf-knowledge-") as tmp:
        root = Path(tmp)
        s = E2EStack(root / ".env", root / "state")
        write_env(s.env_file, s.state_dir, {"OPENWEBUI_IMAGE": image})
        env = s.env
        foundry = lifecycle.serve(root / "foundry", model_path=str(TINY_MODEL_DIR), name=TINY_MODEL_ALIAS,
                                  port=int(env["FOUNDRY_PORT"]))
        settings = envfile.values(envfile.parse((REPO / "openwebui" / "openwebui.env").read_text()))
        box = docker.from_env().containers.run(
            image, detach=True, name=f"perf-knowledge-{uuid.uuid4().hex[:8]}", network_mode="host",
            environment={**settings, "HOST": "127.0.0.1", "PORT": env["OPENWEBUI_PORT"],
                         "WEBUI_SECRET_KEY": env["WEBUI_SECRET_KEY"], "WEBUI_ADMIN_EMAIL": env["WEBUI_ADMIN_EMAIL"],
                         "WEBUI_ADMIN_PASSWORD": env["WEBUI_ADMIN_PASSWORD"],
                         "OPENAI_API_BASE_URL": foundry.chat_base_url, "OPENAI_API_KEY": "unused"})
        try:
            ui = openwebui.OpenWebUI(s.url("OPENWEBUI_PORT"))
            wait_for(ui.health, "Open WebUI answers /health", timeout=180)
            openwebui.login(ui, env["WEBUI_ADMIN_EMAIL"], env["WEBUI_ADMIN_PASSWORD"], s.state_dir)
            folder = root / "notes"
            folder.mkdir()
            size = make_folder(folder, args.files, args.kib)
            api = KnowledgeAPI(ui)
            first = sync(folder, api, state_dir=s.state_dir)
            again = sync(folder, api, state_dir=s.state_dir)
            print(f"sync of {args.files} files, {size / 1024:,.0f} KiB: first {first.seconds:.1f} s "
                  f"({first.seconds / args.files * 1000:.0f} ms per file, {len(first.added)} added); "
                  f"unchanged re-run {again.seconds:.2f} s ({again.uploads} uploads)")
            model = foundry.model_id
            chat_seconds(ui, model, None)  # warm both paths once
            chat_seconds(ui, model, first.collection.id)
            plain, rag = [], []
            for _ in range(args.pairs):
                plain.append(chat_seconds(ui, model, None))
                rag.append(chat_seconds(ui, model, first.collection.id))
            for name, xs in (("without the collection", plain), ("with the collection", rag)):
                print(f"chat {name}: p50 {statistics.median(xs) * 1000:.0f} ms, "
                      f"p95 {pct(xs, 0.95) * 1000:.0f} ms ({len(xs)} requests)")
            print(f"retrieval adds p50 {(statistics.median(rag) - statistics.median(plain)) * 1000:+.0f} ms")
        finally:
            box.remove(force=True, v=True)
            lifecycle.stop(root / "foundry")


if __name__ == "__main__":
    main()
