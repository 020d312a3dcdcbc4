"""`knowledge.sync FOLDER [--name NAME]`, `knowledge.list`: local folders as Open WebUI
knowledge collections (a chat that names the collection answers from them, with citations)."""

from __future__ import annotations

from invoke import Collection, Exit, task

from stackctl.cli import R, edge
from stackctl.console import cmd


def _api():
    from stackctl.config.settings import OPENWEBUI
    from stackctl.config.stack import load_stack
    from stackctl.errors import StackError
    from stackctl.knowledge.api import KnowledgeAPI
    from stackctl.openwebui import OpenWebUI, login

    stack = load_stack()
    ui = OpenWebUI(stack.api_url(OPENWEBUI.port_key))
    if not ui.health():
        raise StackError(f"Open WebUI at {ui.base_url} is not answering — start the stack with `{cmd('up')}`",
                         exit_code=2)
    login(ui, stack.env["WEBUI_ADMIN_EMAIL"], stack.env["WEBUI_ADMIN_PASSWORD"], stack.state_dir)
    return KnowledgeAPI(ui), stack


@task(help={"folder": "The folder to sync (relative to where you typed the command); subfolders included, "
                      "hidden files and folders left out.",
            "name": "The collection's name in Open WebUI (default: the folder's name); created if missing."})
@edge
def sync(c, folder, name=None):
    """Sync a folder into an Open WebUI knowledge collection: add new files, re-upload changed
    ones, remove deleted ones; files Open WebUI cannot read are skipped with the reason.

    Exit 0 when the collection mirrors the folder, 1 when some files were refused (too big,
    unreadable, failed upload: each named), 2 when the sync could not run at all."""
    from stackctl.day2.bundle import user_path
    from stackctl.knowledge.sync import check_folder
    from stackctl.knowledge.sync import sync as do_sync

    root = user_path(folder)
    check_folder(root)  # before signing in: a typo is answered at once
    api, stack = _api()
    R.step(f"syncing {root} into Open WebUI")
    res = do_sync(root, api, name=name, state_dir=stack.state_dir, say=lambda line: R.info(f"  {line}"),
                  wanted=_openwebui_settings(stack.root))
    if res.stale:
        from stackctl.knowledge.sync import embedding_of, reindex_hint

        R.warn(reindex_hint(res.collection.name, res.stale, embedding_of(api.embedding_config())))
    if res.drift:
        R.warn(f"Open WebUI keeps document settings from before the stack's: {'; '.join(res.drift)} — "
               "change them in Admin Settings › Documents if you want the stack's (see openwebui/README.md)")
    kept = f", {res.foreign} added by hand left alone" if res.foreign else ""
    swept = f", {res.swept} failed upload(s) of an earlier run deleted" if res.swept else ""
    summary = (f"{res.collection.name!r}: {len(res.added)} added, {len(res.updated)} updated, "
               f"{len(res.removed)} removed, {len(res.skipped) + len(res.refused)} skipped, "
               f"{len(res.failed)} failed, {res.unchanged} unchanged{kept}{swept} in {res.seconds:.1f}s")
    if not res.complete:
        R.fail(summary)
        R.info(f"  {len(res.refused) + len(res.failed)} file(s) not synced (see above); fix them and run "
               f"`{cmd('knowledge.sync ' + _quoted(folder))}` again")
        raise Exit(code=1)
    R.ok(summary)
    R.info(f"  In a chat, type # and pick {res.collection.name!r} to answer from it (sources are cited).")


@task(name="list")
@edge
def list_(c):
    """Knowledge collections in Open WebUI: files, and when each was last synced (and from where);
    first, how Open WebUI retrieves (embedding model, chunks, top-k, hybrid search)."""
    import httpx

    from stackctl.knowledge.sync import (
        embedding_of,
        lost,
        reindex_hint,
        retrieval_line,
        stale_model,
        synced,
    )

    api, stack = _api()
    try:
        colls = api.collections()
        embedding = api.embedding_config()
        how = retrieval_line(embedding, api.retrieval_config())
    except httpx.HTTPError as err:
        raise lost(err) from None
    R.info(f"Open WebUI {how}")
    if not colls:
        R.info(f"no knowledge collections yet — add a folder with `{cmd('knowledge.sync FOLDER')}`")
        return
    state = synced(stack.state_dir)
    width = max(len(k.name) for k in colls)
    R.info(f"{'collection':<{width}}  {'files':>5}  last synced")
    for k in sorted(colls, key=lambda k: k.name.lower()):
        s = state.get(k.id)
        when = f"{s['synced_at']} from {s['folder']}" if s else "never by knowledge.sync here"
        R.info(f"{k.name:<{width}}  {k.file_count:>5}  {when}")
    for k in colls:
        old = stale_model(state.get(k.id), embedding_of(embedding))
        if old:
            R.warn(reindex_hint(k.name, old, embedding_of(embedding)))


@task
@edge
def reindex(c):
    """Re-embed every knowledge collection with Open WebUI's current embedding model (after
    it changed): Open WebUI re-reads the text it stored; the folders are not needed."""
    import time

    import httpx

    from stackctl.knowledge.sync import embedding_of, lost, mark_reindexed

    api, stack = _api()
    try:
        current = embedding_of(api.embedding_config())
        colls = api.collections()
        R.step(f"re-embedding {len(colls)} collection(s) with {current.lstrip(':')} "
               "(Open WebUI works through every file; this can take minutes)")
        t0 = time.monotonic()
        api.reindex()
    except httpx.HTTPError as err:
        raise lost(err) from None
    mark_reindexed(stack.state_dir, current)
    R.ok(f"re-indexed {len(colls)} collection(s) with {current.lstrip(':')} in "
         f"{time.monotonic() - t0:.0f}s")


def _openwebui_settings(root) -> dict[str, str]:
    """openwebui/openwebui.env, the settings the stack starts Open WebUI with."""
    from stackctl.config import envfile

    path = root / "openwebui" / "openwebui.env"
    return envfile.values(envfile.parse(path.read_text(), str(path)))


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)


ns = Collection("knowledge")
ns.add_task(sync)
ns.add_task(list_)
ns.add_task(reindex)
