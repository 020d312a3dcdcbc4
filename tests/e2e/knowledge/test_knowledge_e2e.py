"""`./stack knowledge.sync` / `knowledge.list` against a real Open WebUI: the stand-in image
(open-webui==0.12.4 with all-MiniLM-L6-v2 baked in, offline) in a lone container with the
stack's own openwebui.env and a headless admin, on a real Docker Engine. The commands run
as a user runs them (invoke in a subprocess, an env file of their own)."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import docker
import pytest

from stackctl import openwebui
from stackctl.checks import knowledge as knowledge_check
from stackctl.checks.context import Ctx
from stackctl.config import envfile
from tests.plugins.common import REPO, wait_for
from tests.plugins.stack import E2EStack, write_env

DOCS = {  # distinct topics, so each query has one right answer
    "volcanoes.md": "# Volcanoes\n\nMagma rises through cracks in the crust and erupts as lava. "
                    "Basalt lava flows are runny; andesite builds steep stratovolcanoes.\n",
    "kitchen/sourdough.txt": "Sourdough bread rises thanks to a starter: flour and water fermented by wild "
                             "yeast and lactobacilli. Feed the starter daily and bake at 230 degrees.\n",
    "orbits.html": "<html><body><h1>Orbits</h1><p>Satellites stay in orbit because their sideways speed "
                   "balances the pull of gravity; geostationary orbits sit 35,786 km above the equator.</p>"
                   "</body></html>",
}


class PromptRecorder(ThreadingHTTPServer):
    """A pass-through between Open WebUI and Foundry Local that keeps each request's JSON
    body: the prompts as they reach Foundry. Responses (streams too) are relayed as read."""

    daemon_threads = True

    def __init__(self, upstream: str):
        super().__init__(("127.0.0.1", 0), _Relay)
        self.upstream = urlsplit(upstream)
        self.bodies: list[dict] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.upstream.path}"


class _Relay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: streams pass as they come

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if body:
            self.server.bodies.append(json.loads(body))
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
        conn.request(self.command, self.path, body=body or None,
                     headers={k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")})
        resp = conn.getresponse()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.end_headers()
        while chunk := resp.read1(65536):
            self.wfile.write(chunk)
            self.wfile.flush()
        conn.close()

    do_GET = do_POST = _relay

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def recorder(foundry_server):
    rec = PromptRecorder(foundry_server.chat_base_url)
    threading.Thread(target=rec.serve_forever, daemon=True).start()
    yield rec
    rec.shutdown()

MARKERS = {"volcanoes.md": "erupts as lava", "kitchen/sourdough.txt": "wild yeast and lactobacilli",
           "orbits.html": "geostationary orbits sit 35,786 km"}  # a phrase of each, as extracted


@pytest.fixture(scope="module")
def owui(tmp_path_factory, stack_images, recorder):
    """A lone Open WebUI container (the stack's settings) whose OpenAI connection is the
    session's real Foundry Local serving the tiny model (through the prompt recorder); and
    an env file naming it."""
    root = tmp_path_factory.mktemp("knowledge")
    s = E2EStack(root / ".env", root / "state")
    write_env(s.env_file, s.state_dir, {"OPENWEBUI_IMAGE": stack_images["OPENWEBUI_IMAGE"]})
    env = s.env
    settings = envfile.values(envfile.parse((REPO / "openwebui" / "openwebui.env").read_text()))
    client = docker.from_env()
    t0 = time.monotonic()
    box = client.containers.run(
        stack_images["OPENWEBUI_IMAGE"], detach=True, name=f"knowledge-e2e-{uuid.uuid4().hex[:8]}",
        # Foundry binds loopback only (the stack's gateway is its door to containers), so
        # this lone Open WebUI shares the host's network and listens on loopback itself.
        network_mode="host",
        environment={**settings, "HOST": "127.0.0.1", "PORT": env["OPENWEBUI_PORT"],
                     "WEBUI_SECRET_KEY": env["WEBUI_SECRET_KEY"],
                     "WEBUI_ADMIN_EMAIL": env["WEBUI_ADMIN_EMAIL"], "WEBUI_ADMIN_PASSWORD": env["WEBUI_ADMIN_PASSWORD"],
                     "OPENAI_API_BASE_URL": recorder.base_url, "OPENAI_API_KEY": "unused"})
    try:
        ui = openwebui.OpenWebUI(s.url("OPENWEBUI_PORT"))
        wait_for(ui.health, "Open WebUI answers /health", timeout=180)
        print(f"Open WebUI healthy {time.monotonic() - t0:.1f}s after start")
        s.ui = openwebui.login(ui, env["WEBUI_ADMIN_EMAIL"], env["WEBUI_ADMIN_PASSWORD"], s.state_dir)
        s.box = box
        yield s
    finally:
        box.remove(force=True, v=True)


def _folder(base: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return base


def _collection(s, name: str) -> dict:
    items = s.ui.get("/api/v1/knowledge/").json()["items"]
    [k] = [k for k in items if k["name"] == name]
    return k


def _files(s, kid: str) -> dict[str, dict]:
    """The collection's files by the folder path they were synced from."""
    items = s.ui.get(f"/api/v1/knowledge/{kid}/files", params={"limit": 100}).json()["items"]
    return {f["meta"]["data"]["source_path"]: f for f in items}


def _best_source(s, kid: str, query: str) -> str:
    """The file Open WebUI's vector search ranks first for ``query`` (real embeddings)."""
    r = s.ui.post("/api/v1/retrieval/query/collection", json={"collection_names": [kid], "query": query, "k": 1})
    r.raise_for_status()
    return r.json()["metadatas"][0][0]["source_path"]


def _summary(out: str) -> str:
    [line] = [ln for ln in out.splitlines() if re.search(r"\d+ added, \d+ updated", ln)]
    return line


def _pdf(path: Path, text: str) -> None:
    """A one-page PDF with ``text`` as real (extractable) text, as a word processor writes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"pdf.fonttype": 42}):
        fig = plt.figure()
        fig.text(0.05, 0.5, text)
        fig.savefig(path)
        plt.close(fig)


def test_a_folder_syncs_idempotently_and_follows_edits_and_deletions(owui, tmp_path):
    notes = _folder(tmp_path / "field-notes", {**DOCS, "photo.png": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
                                              "empty.txt": b"", ".git/config": "[core]"})
    _pdf(notes / "reefs.pdf", "Coral reefs are built by tiny animals called polyps.")
    t0 = time.monotonic()
    first = owui.invoke("knowledge.sync", str(notes))
    print(f"first sync of {len(DOCS)} documents: {time.monotonic() - t0:.1f}s (CLI process included)")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "created knowledge collection 'field-notes'" in first.stdout
    assert "skipped photo.png: binary file (.png): " in first.stdout
    assert "skipped empty.txt: empty: nothing to index" in first.stdout
    assert ".git" not in first.stdout
    assert "keeps document settings" not in first.stdout  # a fresh install took the stack's
    assert re.search(r"'field-notes': 4 added, 0 updated, 0 removed, 2 skipped, 0 failed, 0 unchanged in [\d.]+s",
                     _summary(first.stdout))
    kid = _collection(owui, "field-notes")["id"]
    files = _files(owui, kid)
    assert sorted(files) == sorted([*DOCS, "reefs.pdf"])
    for rel, text in DOCS.items():
        assert files[rel]["meta"]["file_hash"] == hashlib.sha256(text.encode()).hexdigest()
    assert _best_source(owui, kid, "how does lava erupt from a volcano") == "volcanoes.md"
    assert _best_source(owui, kid, "feeding the yeast starter before baking") == "kitchen/sourdough.txt"
    assert _best_source(owui, kid, "why satellites do not fall down") == "orbits.html"
    assert _best_source(owui, kid, "which animals build coral reefs") == "reefs.pdf"  # text extracted from the PDF

    again = owui.invoke("knowledge.sync", str(notes))
    assert again.returncode == 0
    assert re.search(r"0 added, 0 updated, 0 removed, 2 skipped, 0 failed, 4 unchanged", _summary(again.stdout))
    assert {rel: f["id"] for rel, f in _files(owui, kid).items()} == {rel: f["id"] for rel, f in files.items()}

    (notes / "kitchen" / "sourdough.txt").write_text("Rye sourdough needs a wetter dough and a longer proof.\n")
    (notes / "volcanoes.md").unlink()
    edited = owui.invoke("knowledge.sync", str(notes))
    assert edited.returncode == 0
    assert "updated kitchen/sourdough.txt" in edited.stdout and "removed volcanoes.md" in edited.stdout
    assert re.search(r"0 added, 1 updated, 1 removed, 2 skipped, 0 failed, 2 unchanged", _summary(edited.stdout))
    now = _files(owui, kid)
    assert sorted(now) == ["kitchen/sourdough.txt", "orbits.html", "reefs.pdf"]
    assert now["kitchen/sourdough.txt"]["id"] != files["kitchen/sourdough.txt"]["id"]
    assert "Rye sourdough" in owui.ui.get(f"/api/v1/files/{now['kitchen/sourdough.txt']['id']}").json()["data"]["content"]
    # the old versions are gone from Open WebUI altogether, not only unlinked
    assert owui.ui.get(f"/api/v1/files/{files['volcanoes.md']['id']}").status_code == 404
    assert owui.ui.get(f"/api/v1/files/{files['kitchen/sourdough.txt']['id']}").status_code == 404

    listed = owui.invoke("knowledge.list")
    assert listed.returncode == 0
    assert listed.stdout.startswith("Open WebUI embeddings: sentence-transformers/all-MiniLM-L6-v2 (built in, on "
                                    "Open WebUI's CPU); chunks of 800 characters, top 4 per question, "
                                    "hybrid search off\n"), listed.stdout
    assert re.search(rf"field-notes\s+3\s+\d{{4}}-\d\d-\d\dT[\d:]+\+00:00 from {re.escape(str(notes))}", listed.stdout)


def test_a_changed_embedding_model_is_named_and_reindex_re_embeds_for_real(owui, tmp_path):
    """Only one embedding model exists offline, so the change is the record's: the
    collection "was embedded with" another model. list names it with the command; the
    command runs Open WebUI's own re-index (every collection, from its stored text) and
    search still finds the right file afterwards."""
    from stackctl.knowledge.sync import STATE_FILE

    notes = _folder(tmp_path / "atlas", {"volcanoes.md": DOCS["volcanoes.md"],
                                         "orbits.html": DOCS["orbits.html"]})
    assert owui.invoke("knowledge.sync", str(notes)).returncode == 0
    kid = _collection(owui, "atlas")["id"]
    state = owui.state_dir / STATE_FILE
    data = json.loads(state.read_text())
    assert data[kid]["embedding"] == ":sentence-transformers/all-MiniLM-L6-v2"
    data[kid]["embedding"] = "openai:an-older-model"
    state.write_text(json.dumps(data))
    listed = owui.invoke("knowledge.list")
    assert "'atlas' was embedded with openai:an-older-model, Open WebUI now embeds with " \
           "sentence-transformers/all-MiniLM-L6-v2" in listed.stdout + listed.stderr
    assert "`./stack knowledge.reindex`" in listed.stdout + listed.stderr
    synced = owui.invoke("knowledge.sync", str(notes))  # says it too, and keeps the old name
    assert "'atlas' was embedded with openai:an-older-model" in synced.stdout + synced.stderr
    t0 = time.monotonic()
    done = owui.invoke("knowledge.reindex")
    print(f"knowledge.reindex of every collection: {time.monotonic() - t0:.1f}s (CLI included)")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"re-indexed \d+ collection\(s\) with sentence-transformers/all-MiniLM-L6-v2", done.stdout)
    assert json.loads(state.read_text())[kid]["embedding"] == ":sentence-transformers/all-MiniLM-L6-v2"
    again = owui.invoke("knowledge.list")
    assert "was embedded with" not in again.stdout + again.stderr
    assert _best_source(owui, kid, "how does lava erupt from a volcano") == "volcanoes.md"
    assert _best_source(owui, kid, "why satellites do not fall down") == "orbits.html"


def test_bad_input_is_refused_one_line_each_and_leaves_nothing_behind(owui, tmp_path):
    missing = owui.invoke("knowledge.sync", str(tmp_path / "no-such-folder"))
    assert missing.returncode == 2
    assert re.fullmatch(re.escape(f"error: {tmp_path / 'no-such-folder'}: no such folder — give an existing folder, "
                                  "e.g. `") + r"(\./stack|\S+/stack) knowledge\.sync ~/notes`", missing.stderr.strip())

    limit = int(envfile.values(envfile.parse((REPO / "openwebui" / "openwebui.env").read_text()))["RAG_FILE_MAX_SIZE"])
    box = _folder(tmp_path / "inbox", {"ok.md": "Tides follow the moon.\n", "broken.pdf": "not a PDF at all\n"})
    with (box / "scan.txt").open("wb") as f:
        f.truncate(limit * 1024 * 1024 + 1)  # sparse: over the limit without writing it
        f.seek(0)
        f.write(b"text")
    before = {f["id"] for f in owui.ui.get("/api/v1/files/", params={"content": "false"}).json()["items"]}
    bad = owui.invoke("knowledge.sync", str(box))
    assert bad.returncode == 1
    assert f"refused scan.txt: {limit:.1f} MB is over Open WebUI's upload limit of {limit} MB (RAG_FILE_MAX_SIZE)" \
        in bad.stdout
    assert re.search(r"FAILED broken\.pdf: \S.*\(", bad.stdout)  # Open WebUI's own reason, one line
    assert re.search(r"1 added, 0 updated, 0 removed, 1 skipped, 1 failed, 0 unchanged", _summary(bad.stdout))
    assert "2 file(s) not synced (see above); fix them and run" in bad.stdout
    kid = _collection(owui, "inbox")["id"]
    assert sorted(_files(owui, kid)) == ["ok.md"]
    after = owui.ui.get("/api/v1/files/", params={"content": "false"}).json()["items"]
    assert [f["filename"] for f in after if f["id"] not in before] == ["ok.md"]  # no orphan of broken.pdf


def test_what_an_interrupted_run_left_behind_is_cleaned_up_by_the_next(owui, tmp_path):
    """A run cut off between upload and check leaves a failed file; one cut off between a
    re-upload and the removal of the old version leaves two copies of a path."""
    notes = _folder(tmp_path / "cut-off", {"a.md": "Glaciers carve U-shaped valleys as they slide downhill.\n"})
    assert owui.invoke("knowledge.sync", str(notes)).returncode == 0
    kid = _collection(owui, "cut-off")["id"]
    [kept] = _files(owui, kid).values()

    def upload(name: str, content: bytes, ctype: str) -> str:
        meta = json.dumps({"knowledge_id": kid, "source_path": "a.md"})
        r = owui.ui.post("/api/v1/files/", params={"process": "true", "process_in_background": "false"},
                         files={"file": (name, content, ctype)}, data={"metadata": meta})
        r.raise_for_status()
        return r.json()["id"]

    stale = upload("a.md", b"An older version of the glacier note, never removed.\n", "text/markdown")
    failed = upload("b.png", b"\x89PNG\r\n\x1a\n\0\0", "image/png")
    assert owui.ui.get(f"/api/v1/files/{failed}").json()["data"]["status"] == "failed"
    assert sorted(f["id"] for f in owui.ui.get(f"/api/v1/knowledge/{kid}/files").json()["items"]) == \
        sorted([kept["id"], stale])

    again = owui.invoke("knowledge.sync", str(notes))
    assert again.returncode == 0
    assert "[1/1] removed an extra copy of a.md (" in again.stdout
    assert re.search(r"0 added, 0 updated, 1 removed, 0 skipped, 0 failed, 1 unchanged, "
                     r"1 failed upload\(s\) of an earlier run deleted", _summary(again.stdout))
    assert [f["id"] for f in owui.ui.get(f"/api/v1/knowledge/{kid}/files").json()["items"]] == [kept["id"]]
    assert owui.ui.get(f"/api/v1/files/{failed}").status_code == 404
    assert owui.ui.get(f"/api/v1/files/{stale}").status_code == 404


def test_settings_stored_by_an_older_install_are_named_not_overwritten(owui, tmp_path):
    r = owui.ui.post("/api/v1/retrieval/config/update", json={"CHUNK_SIZE": 1000, "TOP_K": 3})
    r.raise_for_status()
    try:
        notes = _folder(tmp_path / "older", {"a.md": "Lighthouses warn ships away from rocks at night.\n"})
        cp = owui.invoke("knowledge.sync", str(notes))
        assert cp.returncode == 0
        assert ("! Open WebUI keeps document settings from before the stack's: CHUNK_SIZE 1000 (the stack's "
                "CHUNK_SIZE=800); TOP_K 3 (the stack's RAG_TOP_K=4) — change them in Admin Settings › Documents "
                "if you want the stack's (see openwebui/README.md)") in cp.stdout
        stored = owui.ui.get("/api/v1/retrieval/config").json()
        assert (stored["CHUNK_SIZE"], stored["TOP_K"]) == (1000, 3)  # the admin's to change
    finally:
        owui.ui.post("/api/v1/retrieval/config/update", json={"CHUNK_SIZE": 800, "TOP_K": 4}).raise_for_status()


def test_a_chat_naming_the_collection_cites_the_matching_document(owui, tmp_path, foundry_server, recorder):
    notes = _folder(tmp_path / "atlas", DOCS)
    assert owui.invoke("knowledge.sync", str(notes)).returncode == 0
    kid = _collection(owui, "atlas")["id"]
    models = wait_for(lambda: owui.ui.models(), "Open WebUI lists Foundry's model", timeout=60)
    assert foundry_server.model_id in models
    for query, want in [("How does lava erupt from a volcano?", "volcanoes.md"),
                        ("How do I feed a sourdough starter?", "kitchen/sourdough.txt"),
                        ("Why do satellites stay in orbit?", "orbits.html")]:
        r = owui.ui.post("/api/chat/completions", timeout=120, json={
            "model": foundry_server.model_id, "stream": False, "max_tokens": 16,
            "messages": [{"role": "user", "content": query}], "files": [{"type": "collection", "id": kid}]})
        assert r.status_code == 200, r.text
        [src] = r.json()["sources"]  # one per collection: its chunks, best first
        assert src["source"] == {"type": "collection", "id": kid}
        ranked = [m["source_path"] for m in src["metadata"]]
        assert src["distances"] == sorted(src["distances"], reverse=True)  # relevance, best first
        assert ranked[0] == want, (query, ranked, src["distances"])
        assert r.json()["choices"][0]["message"]["content"]  # the tiny model answered (gibberish)
        # The prompt as it reached Foundry Local holds the matching document's text, first.
        prompt = "\n".join(m["content"] for m in recorder.bodies[-1]["messages"])
        at = {rel: prompt.find(marker) for rel, marker in MARKERS.items()}
        assert at[want] >= 0 and at[want] == min(i for i in at.values() if i >= 0), (want, at, prompt[:3000])


def test_smokes_retrieval_check_passes_on_the_synced_collections(owui, foundry_server):
    """The check `./stack smoke` runs, against this Open WebUI (collections of the tests above)."""
    ctx = Ctx(stack=None)
    ctx.ui, ctx.view = owui.ui, SimpleNamespace(chat_models=[foundry_server.model_id])
    try:
        detail = knowledge_check.check_retrieval(ctx)
    finally:
        ctx.close()
    assert re.fullmatch(r"'atlas': a question from kitchen/sourdough\.txt cited it \(#1 of 3 sources\)", detail)


SHOT = REPO / "artifacts" / "knowledge-citation.png"  # kept by CI with the other artifacts


def _sign_in(page, url: str, env: dict[str, str], seen: list[str]) -> None:
    """Through the sign-in form. Chromium aborts the requests in flight when the host's
    network interfaces change (ERR_NETWORK_CHANGED: Docker adding a container's veth — other
    tests on the machine do); the page then shows a bare 500, so that case alone is retried."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(3):
        mark = len(seen)
        page.context.clear_cookies()
        page.goto(url + "/auth")
        page.evaluate("() => localStorage.clear()")
        page.goto(url + "/auth")
        page.fill("input[name=email]", env["WEBUI_ADMIN_EMAIL"])
        page.fill("input[name=password]", env["WEBUI_ADMIN_PASSWORD"])
        page.click("button:has-text('Sign in')")
        try:
            page.wait_for_selector("#chat-input", timeout=30_000)
            return
        except PlaywrightError:
            if attempt == 2 or not any("ERR_NETWORK_CHANGED" in x for x in seen[mark:]):
                raise
            print(f"sign-in page hit ERR_NETWORK_CHANGED (attempt {attempt + 1}); again")


def test_the_chat_page_lists_the_synced_file_as_the_first_source(owui, tmp_path, foundry_server):
    """A person's path in Chromium: sign in, pick the model, type # and pick the collection,
    ask; the answer's sources list names the matching file first. Screenshot kept."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from stackctl.checks.browser import CHROMIUM_ARGS, chromium
    from stackctl.checks.browser import _dismiss_release_notes as dismiss_release_notes

    notes = _folder(tmp_path / "gallery", DOCS)
    assert owui.invoke("knowledge.sync", str(notes)).returncode == 0
    env = owui.env
    SHOT.parent.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        seen: list[str] = []  # what the page ran into, for a failure's message
        page.on("response", lambda r: seen.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
        page.on("pageerror", lambda e: seen.append(f"page error: {str(e)[:300]}"))
        page.on("requestfailed", lambda r: seen.append(f"{r.url} {r.failure}"))
        page.on("console", lambda m: seen.append(f"console: {m.text[:300]}") if m.type == "error" else None)
        try:
            _sign_in(page, owui.url("OPENWEBUI_PORT"), env, seen)
            dismiss_release_notes(page)
            page.click("#model-selector-model-button")
            page.click(f"button[aria-label='Select {foundry_server.model_id} model']", timeout=10_000)
            page.locator("#chat-input").click()
            page.keyboard.type("#")
            page.get_by_text("gallery", exact=True).first.click(timeout=10_000)  # the # menu's collection
            page.locator("#chat-input").click()
            page.keyboard.type("Why do satellites stay in orbit?")
            page.keyboard.press("Enter")
            sources = page.get_by_text(re.compile(r"^\d+ Sources?$")).last
            sources.click(timeout=120_000)  # shown once the answer is complete
            listed = {name: page.get_by_text(name, exact=True).last for name in
                      ("orbits.html", "volcanoes.md", "sourdough.txt")}
            listed["orbits.html"].wait_for(state="visible", timeout=10_000)
            listed["orbits.html"].scroll_into_view_if_needed()  # for the screenshot
            tops = {n: loc.bounding_box()["y"] for n, loc in listed.items() if loc.is_visible()}
            assert min(tops, key=tops.get) == "orbits.html", tops
        except PlaywrightError as err:
            raise AssertionError(f"{str(err).splitlines()[0]} — the page saw: {seen[-5:]}") from err
        finally:
            page.screenshot(path=str(SHOT))
            browser.close()
    print(f"citation screenshot kept at {SHOT}")
