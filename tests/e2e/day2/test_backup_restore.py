"""Day-2 on a real stack: backup, refused restores, restore from nothing, failed upgrade.

Tests run in order on one throwaway stack (tests/plugins/stack.py). Stack ups are
kept to what the stories need: the first `invoke up`, the restore after
`down --volumes`, and the upgrade's own start + rollback.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import stat
import tarfile
import time

import docker
import pytest

from stackctl import openwebui
from stackctl.config import envfile
from stackctl.day2.archive import verify
from stackctl.docker import engine
from stackctl.errors import StackError
from tests.plugins.common import wait_for
from tests.plugins.stack import STACK_MODEL_ID

TINY = STACK_MODEL_ID
CHATS = [
    {"title": "backup me", "messages": [{"role": "user", "content": "hello"},
                                        {"role": "assistant", "content": "hi there"}]},
    {"title": "second chat", "messages": [{"role": "user", "content": "2+2?"},
                                          {"role": "assistant", "content": "4"}]},
]


def signin(s) -> openwebui.OpenWebUI:
    env = s.env
    return openwebui.login(openwebui.OpenWebUI(s.url("OPENWEBUI_PORT")), env["WEBUI_ADMIN_EMAIL"],
                           env["WEBUI_ADMIN_PASSWORD"], s.state_dir)


def states(s):
    return engine.services(docker.from_env(), s.env["COMPOSE_PROJECT_NAME"])


def volume(s) -> str:
    return f"{s.env['COMPOSE_PROJECT_NAME']}_open-webui-data"


def volume_fingerprint(s, image: str) -> str:
    """Every path with mode/owner and every file's sha256, from an independent container."""
    script = ("cd /v && find . -printf '%p %m %U:%G %s\\n' | sort && "
              "find . -type f -print0 | sort -z | xargs -0 -r sha256sum")
    out = docker.from_env().containers.run(image, ["sh", "-c", script], remove=True, network_disabled=True,
                                           volumes={volume(s): {"bind": "/v", "mode": "ro"}})
    return out.decode()


def sqlite_check(s, image: str) -> dict:
    script = ("import json, sqlite3; c = sqlite3.connect('/v/webui.db'); "
              "print(json.dumps({'integrity': c.execute('PRAGMA integrity_check').fetchone()[0], "
              "'chats': [list(r) for r in c.execute('SELECT id, title FROM chat ORDER BY id')]}))")
    out = docker.from_env().containers.run(image, ["python3", "-c", script], remove=True, network_disabled=True,
                                           volumes={volume(s): {"bind": "/v", "mode": "rw"}})
    return json.loads(out.decode().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def up(e2e_stack):
    cp = e2e_stack.invoke("up", timeout=1500)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    return cp


@pytest.fixture(scope="module")
def chats(e2e_stack, up):
    ui = signin(e2e_stack)
    ids = []
    for c in CHATS:
        r = ui.post("/api/v1/chats/new", json={"chat": {**c, "models": [TINY]}})
        r.raise_for_status()
        ids.append(r.json()["id"])
    return dict(zip(ids, CHATS, strict=True))


def assert_chats_back(s, chats):
    ui = signin(s)
    for chat_id, want in chats.items():
        def readable(cid=chat_id):
            resp = ui.get(f"/api/v1/chats/{cid}")
            return resp if resp.status_code == 200 else None

        body = wait_for(readable, f"chat {chat_id} is readable").json()
        assert body["id"] == chat_id and body["title"] == want["title"]
        assert [(m["role"], m["content"]) for m in body["chat"]["messages"]] == \
            [(m["role"], m["content"]) for m in want["messages"]]


@pytest.fixture(scope="module")
def archive(e2e_stack, chats, tmp_path_factory):
    out = tmp_path_factory.mktemp("backups")
    cp = e2e_stack.invoke("backup", "--include-metrics", "--out", str(out))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    files = list(out.glob("*.tar.gz"))
    assert len(files) == 1, files
    return files[0]


def test_backup_is_a_verified_private_archive_and_open_webui_is_back(e2e_stack, archive, up):
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert archive.name.startswith(f"{e2e_stack.env['COMPOSE_PROJECT_NAME']}-backup-")
    m = verify(archive)
    assert m.openwebui_version == "0.12.4"
    assert m.images["OPENWEBUI_IMAGE"] == e2e_stack.env["OPENWEBUI_IMAGE"]
    # --include-metrics: every metrics-side volume of this stack (no Grafana here)
    assert m.volumes == ("open-webui-data", "prometheus-data", "alertmanager-data")
    assert any(f.startswith("volumes/prometheus-data/") for f in m.files)
    assert "volumes/open-webui-data/webui.db" in m.files
    assert not any(f.endswith((".partial",)) for f in m.files)
    assert states(e2e_stack)["open-webui"].ok  # started again and healthy


# -- refused archives: nothing changes ------------------------------------------------------


def _rewrite(src, dst, edit_manifest=None, edit_file=None):
    with tarfile.open(src, "r:gz") as a, tarfile.open(dst, "w:gz") as b:
        for info in a:
            data = a.extractfile(info).read() if info.isfile() else None
            if info.name == "manifest.json" and edit_manifest:
                d = json.loads(data)
                edit_manifest(d)
                data = json.dumps(d).encode()
            elif data is not None and edit_file and info.name.endswith("/webui.db"):
                data = edit_file(data)
            if data is not None:
                info.size = len(data)
            b.addfile(info, io.BytesIO(data) if data is not None else None)
    return dst


def _bump_version(d):
    d["openwebui_version"] = "99.0.0"


def _wrong_sum(d):
    d["files"]["volumes/open-webui-data/webui.db"]["sha256"] = "0" * 64


@pytest.fixture(scope="module")
def bad_archives(archive, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    raw = archive.read_bytes()
    (d / "truncated.tar.gz").write_bytes(raw[: len(raw) * 2 // 3])
    flipped = bytearray(raw)
    for i in range(len(raw) // 2, len(raw) // 2 + 64):
        flipped[i] ^= 0x5A
    (d / "corrupt.tar.gz").write_bytes(bytes(flipped))
    (d / "notgzip.tar.gz").write_bytes(gzip.decompress(raw)[:4096])
    _rewrite(archive, d / "wrongsum.tar.gz", edit_manifest=_wrong_sum)
    _rewrite(archive, d / "tampered.tar.gz", edit_file=lambda b: b[:-1] + bytes([b[-1] ^ 1]))
    _rewrite(archive, d / "newer.tar.gz", edit_manifest=_bump_version)
    return d


@pytest.mark.parametrize(("name", "message"), [
    ("truncated", "truncated.tar.gz: not a readable .tar.gz (truncated or corrupt"),
    ("corrupt", "corrupt.tar.gz: not a readable .tar.gz (truncated or corrupt"),
    ("notgzip", "notgzip.tar.gz: not a readable .tar.gz (truncated or corrupt"),
    ("wrongsum", "wrongsum.tar.gz: checksum mismatch for volumes/open-webui-data/webui.db"),
    ("tampered", "tampered.tar.gz: checksum mismatch for volumes/open-webui-data/webui.db"),
    ("newer", "the backup was written by Open WebUI 99.0.0, newer than 0.12.4"),
])
def test_a_bad_archive_is_refused_and_the_data_is_unchanged(e2e_stack, stack_images, bad_archives,
                                                            name, message):
    # Open WebUI stopped so the fingerprint cannot move by itself; restore brings it back later.
    assert e2e_stack.compose("stop", "open-webui").returncode == 0
    before = volume_fingerprint(e2e_stack, stack_images["OPENWEBUI_IMAGE"])
    cp = e2e_stack.invoke("restore", str(bad_archives / f"{name}.tar.gz"), "--yes")
    assert cp.returncode == 1, cp.stdout + cp.stderr
    out = cp.stdout + cp.stderr
    assert message in out and "nothing was changed" in out
    assert len([ln for ln in cp.stderr.splitlines() if ln.startswith("error: ")]) == 1  # one line says it
    assert volume_fingerprint(e2e_stack, stack_images["OPENWEBUI_IMAGE"]) == before
    assert "webui.db" in before


def test_restore_without_yes_off_a_terminal_refuses_in_one_line(e2e_stack, archive, stack_images):
    before = volume_fingerprint(e2e_stack, stack_images["OPENWEBUI_IMAGE"])
    cp = e2e_stack.invoke("restore", str(archive))
    assert cp.returncode == 2
    assert "pass --yes to confirm" in cp.stderr
    assert volume_fingerprint(e2e_stack, stack_images["OPENWEBUI_IMAGE"]) == before


# -- restore from nothing -------------------------------------------------------------------


def test_down_volumes_then_restore_brings_the_same_chats_back(e2e_stack, archive, chats, stack_images):
    assert e2e_stack.invoke("down", "--volumes", "--yes").returncode == 0
    assert not docker.from_env().volumes.list(filters={"name": volume(e2e_stack)})
    cp = e2e_stack.invoke("restore", str(archive), "--yes")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "integrity ok" in cp.stdout and f"{len(chats)} chats" in cp.stdout
    assert all(s.ok for s in states(e2e_stack).values())
    assert_chats_back(e2e_stack, chats)
    check = sqlite_check(e2e_stack, stack_images["OPENWEBUI_IMAGE"])
    assert check["integrity"] == "ok"
    assert {cid for cid, _ in check["chats"]} == set(chats)
    left = [v.name for v in docker.from_env().volumes.list(filters={"name": "day2-"})
            if v.name.startswith(e2e_stack.env["COMPOSE_PROJECT_NAME"])]
    assert left == []  # staging and rollback volumes are cleaned up


# -- upgrade to a broken tag ----------------------------------------------------------------


@pytest.fixture(scope="module")
def broken_tag(e2e_stack, stack_images):
    c = docker.from_env()
    tag = f"{e2e_stack.env['COMPOSE_PROJECT_NAME']}-owui-broken:1"
    dockerfile = (f"FROM {stack_images['OPENWEBUI_IMAGE']}\n"
                  'CMD ["sh", "-c", "echo this image is broken on purpose >&2; exit 1"]\n')
    c.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    yield tag
    with contextlib.suppress(docker.errors.APIError):
        c.images.remove(tag, force=True)


def test_upgrade_to_a_broken_tag_rolls_back_and_keeps_the_chats(e2e_stack, chats, broken_tag,
                                                                tmp_path_factory):
    old = e2e_stack.env["OPENWEBUI_IMAGE"]
    out = tmp_path_factory.mktemp("upgrade-backups")
    cp = e2e_stack.invoke("upgrade", "--to", broken_tag, "--out", str(out), "--timeout", "180")
    text = cp.stdout + cp.stderr
    assert cp.returncode == 1, text
    assert f"upgrade to {broken_tag} failed" in text
    assert f"rolled back to {old} and restored the backup" in text
    assert e2e_stack.env["OPENWEBUI_IMAGE"] == old
    assert len(list(out.glob("*.tar.gz"))) == 1
    st = states(e2e_stack)
    assert st["open-webui"].ok and st["open-webui"].image == old
    assert_chats_back(e2e_stack, chats)


@pytest.fixture(scope="module")
def next_tag(e2e_stack, stack_images):
    """The same Open WebUI under another tag: an upgrade that works."""
    c = docker.from_env()
    tag = f"{e2e_stack.env['COMPOSE_PROJECT_NAME']}-owui-next:1"
    c.images.get(stack_images["OPENWEBUI_IMAGE"]).tag(tag)
    yield tag
    with contextlib.suppress(docker.errors.APIError):
        c.images.remove(tag)


def test_upgrade_to_a_working_tag_moves_the_pin_and_passes_smoke(e2e_stack, chats, next_tag,
                                                                 tmp_path_factory):
    out = tmp_path_factory.mktemp("upgrade-ok")
    cp = e2e_stack.invoke("upgrade", "--to", next_tag, "--out", str(out), "--timeout", "180")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "smoke passed" in cp.stdout
    assert e2e_stack.env["OPENWEBUI_IMAGE"] == next_tag
    assert states(e2e_stack)["open-webui"].image == next_tag
    assert_chats_back(e2e_stack, chats)


def test_upgrade_to_a_tag_that_cannot_be_pulled_changes_nothing(e2e_stack):
    env_before = e2e_stack.env_file.read_bytes()
    cp = e2e_stack.invoke("upgrade", "--to", f"{e2e_stack.env['COMPOSE_PROJECT_NAME']}-owui-nosuch:9")
    assert cp.returncode == 2, cp.stdout + cp.stderr
    assert "is not present locally and pulling it failed" in cp.stderr
    assert e2e_stack.env_file.read_bytes() == env_before


# -- bench through Open WebUI -----------------------------------------------------------------


def test_bench_direct_and_through_open_webui(e2e_stack, up, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cp = e2e_stack.invoke("bench", "--rounds", "1", "--through-openwebui", "--out", str(out))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    doc = json.loads((out / "bench.json").read_text())
    assert doc["models"] == [TINY]  # what Foundry Local has loaded, found through the stack
    by = {r["via"]: r for r in doc["results"]}
    assert by["direct"]["errors"] == 0 and by["openwebui"]["errors"] == 0, doc["results"]
    assert doc["openwebui_overhead_ratio"][TINY] > 0
    assert "Open WebUI overhead for" in cp.stdout
    assert {p.name for p in out.iterdir()} == {"bench.json", "bench.csv", "bench.md", "bench.png"}


# -- issue 13: a cold copy, "did not come back", credentials and disaster recovery ------------

CREDENTIALS = ("WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD")


def _container_events(s, since: float, until: float) -> list[tuple[int, str, str]]:
    """(time, who, action) for the stack's Open WebUI container and the backup's volume
    reader, from the Docker Engine's own event log."""
    project = s.env["COMPOSE_PROJECT_NAME"]
    out = []
    for ev in docker.from_env().events(since=int(since), until=int(until) + 1, decode=True,
                                       filters={"type": "container"}):
        attrs = ev.get("Actor", {}).get("Attributes", {})
        if attrs.get("com.docker.compose.project") == project and attrs.get("com.docker.compose.service") == "open-webui":
            who = "open-webui"
        elif attrs.get("name", "").startswith(f"{project}-day2-export-"):
            who = "reader"
        else:
            continue
        out.append((ev["timeNano"], who, ev["Action"]))
    return sorted(out)


@pytest.fixture(scope="module")
def impatient_backup(e2e_stack, up, tmp_path_factory):
    """`backup --no-secrets --timeout 1`: Open WebUI cannot be healthy again within 1 s (a
    real start takes ~10 s), so the command takes its "did not come back" path."""
    out = tmp_path_factory.mktemp("impatient")
    since = time.time() - 1
    cp = e2e_stack.invoke("backup", "--no-secrets", "--timeout", "1", "--out", str(out))
    events = _container_events(e2e_stack, since, time.time())
    wait_for(lambda: states(e2e_stack)["open-webui"].ok, "open-webui healthy again after the backup")
    return cp, out, events


def test_the_backup_is_taken_cold(impatient_backup):
    """Open WebUI is stopped before the volume reader exists and starts only after it is gone."""
    _, _, events = impatient_backup
    reader = [t for t, who, _ in events if who == "reader"]
    assert reader, events  # the volume was read through a throwaway container
    first, last = min(reader), max(reader)
    before = [a for t, who, a in events if who == "open-webui" and t < first]
    during = [a for t, who, a in events if who == "open-webui" and first <= t <= last]
    after = [a for t, who, a in events if who == "open-webui" and t > last]
    assert "die" in before and before[-1] in ("die", "stop"), events  # stopped before the copy
    assert during == [], events  # nothing started it while the copy ran
    assert "start" in after, events  # started again afterwards


def test_a_service_that_does_not_come_back_fails_the_backup_naming_the_complete_archive(e2e_stack, impatient_backup):
    cp, out, _ = impatient_backup
    assert cp.returncode == 1, cp.stdout + cp.stderr
    errors = [ln for ln in cp.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, cp.stderr
    [archive] = out.glob("*.tar.gz")
    assert "open-webui did not come back after the copy (not healthy after 1s" in errors[0]
    assert f"the backup itself is complete: {archive}" in errors[0]
    assert verify(archive).files  # complete and verified, as the message says


def test_backup_no_secrets_leaves_the_credentials_out(e2e_stack, impatient_backup):
    cp, out, _ = impatient_backup
    [archive] = out.glob("*.tar.gz")
    assert verify(archive).secrets == {}
    raw = gzip.decompress(archive.read_bytes())
    env = e2e_stack.env
    for key in ("WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD"):
        assert env[key].encode() not in raw, key
        assert env[key] not in cp.stdout + cp.stderr, key


def test_disaster_recovery_on_a_fresh_env_signs_in_with_the_backups_password(e2e_stack, archive, chats):
    carried = verify(archive).secrets  # the module's backup, taken with default options
    old = e2e_stack.env
    assert {k: carried[k] for k in CREDENTIALS} == {k: old[k] for k in CREDENTIALS}
    # A new machine: no data, and a fresh clone's .env with newly generated secrets.
    assert e2e_stack.invoke("down", "--volumes", "--yes").returncode == 0
    lines = [ln for ln in e2e_stack.env_file.read_text().splitlines()
             if ln.split("=", 1)[0] not in ("WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD")]
    e2e_stack.env_file.write_text("\n".join(lines) + "\n")
    envfile.ensure(e2e_stack.env_file)
    fresh = e2e_stack.env
    assert fresh["WEBUI_ADMIN_PASSWORD"] != carried["WEBUI_ADMIN_PASSWORD"]

    cp = e2e_stack.invoke("restore", str(archive), "--yes")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "credentials from the backup written to .env: " in cp.stdout
    assert not any(carried[k] in cp.stdout + cp.stderr or fresh[k] in cp.stdout + cp.stderr
                   for k in ("WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY"))
    after = e2e_stack.env
    assert {k: after[k] for k in CREDENTIALS} == {k: carried[k] for k in CREDENTIALS}
    assert {k: v for k, v in after.items() if k not in CREDENTIALS} == \
        {k: v for k, v in fresh.items() if k not in CREDENTIALS}  # every other key as it was
    assert stat.S_IMODE(e2e_stack.env_file.stat().st_mode) == 0o600
    ui = openwebui.OpenWebUI(e2e_stack.url("OPENWEBUI_PORT"))
    with pytest.raises(StackError):
        ui.signin(carried["WEBUI_ADMIN_EMAIL"], fresh["WEBUI_ADMIN_PASSWORD"])  # the fresh one opens nothing
    assert ui.signin(carried["WEBUI_ADMIN_EMAIL"], carried["WEBUI_ADMIN_PASSWORD"])  # the backup's does
    assert_chats_back(e2e_stack, chats)
