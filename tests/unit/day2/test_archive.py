"""Backup archives: writing (atomic, 0600, hashed) and verification on crafted tarballs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import tarfile

import pytest

from stackctl.day2.archive import (
    FORMAT,
    ArchiveError,
    ArchiveWriter,
    Manifest,
    member_problem,
    parse_manifest,
    verify,
    volume_stream,
)


def volume_tar(files: dict[str, bytes], links: dict[str, str] | None = None) -> tarfile.TarFile:
    """A tar like get_archive('/v/.') returns: '.', './dir', './dir/file' …"""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        root = tarfile.TarInfo(".")
        root.type, root.mode, root.uid = tarfile.DIRTYPE, 0o750, 0
        t.addfile(root)
        dirs = sorted({"/".join(n.split("/")[:i]) for n in files for i in range(1, n.count("/") + 1)})
        for d in dirs:
            info = tarfile.TarInfo(f"./{d}")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            t.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, 65534, 65534
            t.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(f"./{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            t.addfile(info)
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r|")


FILES = {"webui.db": b"SQLite format 3\0" + b"x" * 5000, "webui.db-wal": b"w" * 100,
         "uploads/a.txt": b"hello", "cache/embedding/model.bin": b"big"}


def manifest_for(w: ArchiveWriter, **over) -> Manifest:
    fields = dict(created_at="2026-01-01T00:00:00Z", stack_version="0.1.0", project="p",
                  images={"OPENWEBUI_IMAGE": "img:1"}, openwebui_version="0.12.4",
                  volumes=("open-webui-data",), files=dict(w.files), skipped=tuple(w.skipped),
                  excluded=tuple(w.excluded))
    return Manifest(**{**fields, **over})


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "out" / "p-backup-x.tar.gz"
    with ArchiveWriter(path) as w:
        w.add_volume("open-webui-data", volume_tar(FILES, links={"uploads/link": "a.txt"}))
        w.commit(manifest_for(w))
    return path


def test_a_written_archive_verifies_and_lists_every_file_with_its_hash(good):
    assert stat.S_IMODE(good.stat().st_mode) == 0o600
    assert [p.name for p in good.parent.iterdir()] == [good.name]  # no temp file left
    m = verify(good)
    assert set(m.files) == {"volumes/open-webui-data/webui.db", "volumes/open-webui-data/webui.db-wal",
                            "volumes/open-webui-data/uploads/a.txt"}
    e = m.files["volumes/open-webui-data/uploads/a.txt"]
    assert (e.sha256, e.size) == (hashlib.sha256(b"hello").hexdigest(), 5)
    assert m.excluded == ("open-webui-data/cache",)     # re-creatable, left out
    assert m.skipped == ("open-webui-data/uploads/link",)  # links are never archived
    assert m.total_bytes == 5016 + 100 + 5


def test_owner_and_mode_survive_into_the_restore_stream(good):
    data = b"".join(volume_stream(good, "open-webui-data"))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = {m.name: m for m in t}
        assert members["open-webui-data"].mode == 0o750
        db = members["open-webui-data/webui.db"]
        assert (db.uid, db.gid, db.mode) == (65534, 65534, 0o644)
        assert t.extractfile(db).read() == FILES["webui.db"]
        assert "open-webui-data/cache/embedding/model.bin" not in members


def test_a_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "p-backup.tar.gz"
    with pytest.raises(RuntimeError), ArchiveWriter(path) as w:
        w.add_volume("open-webui-data", volume_tar({"webui.db": b"x"}))
        raise RuntimeError("docker went away")
    assert list(tmp_path.iterdir()) == []


def repack(src, dst, edit):
    """Copy archive ``src`` to ``dst`` letting ``edit(info, data)`` → [(info, data)] change members."""
    with tarfile.open(src, "r:gz") as a, tarfile.open(dst, "w:gz") as b:
        for info in a:
            data = a.extractfile(info).read() if info.isfile() else None
            for i, d in edit(info, data):
                if d is not None:
                    i.size = len(d)
                b.addfile(i, io.BytesIO(d) if d is not None else None)
    return dst


def refused(path) -> str:
    with pytest.raises(ArchiveError) as e:
        verify(path)
    assert e.value.exit_code == 1
    msg = str(e.value)
    assert msg.startswith(f"{path.name}: ") and msg.endswith(" — refused; nothing was changed")
    return msg[len(path.name) + 2: -len(" — refused; nothing was changed")]


def test_wrong_checksum(good, tmp_path):
    def edit(info, data):
        if info.name.endswith("uploads/a.txt"):
            data = b"HELLO"
        return [(info, data)]
    bad = repack(good, tmp_path / "bad.tar.gz", edit)
    assert refused(bad) == "checksum mismatch for volumes/open-webui-data/uploads/a.txt"


def test_changed_size(good, tmp_path):
    bad = repack(good, tmp_path / "bad.tar.gz",
                 lambda i, d: [(i, b"longer!" if i.name.endswith("a.txt") else d)])
    assert refused(bad) == "volumes/open-webui-data/uploads/a.txt has 7 bytes, the manifest says 5"


def test_truncated(good, tmp_path):
    bad = tmp_path / "cut.tar.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert refused(bad).startswith("not a readable .tar.gz (truncated or corrupt: ")


def test_corrupt_bytes(good, tmp_path):
    raw = bytearray(good.read_bytes())
    for i in range(200, 260):
        raw[i] ^= 0xFF
    bad = tmp_path / "flip.tar.gz"
    bad.write_bytes(bytes(raw))
    assert refused(bad).startswith("not a readable .tar.gz (truncated or corrupt: ")


def test_not_gzip_at_all(tmp_path):
    bad = tmp_path / "notes.tar.gz"
    bad.write_text("hello")
    assert refused(bad).startswith("not a readable .tar.gz")


def test_missing_manifest(good, tmp_path):
    bad = repack(good, tmp_path / "bad.tar.gz", lambda i, d: [] if i.name == "manifest.json" else [(i, d)])
    assert refused(bad) == "has no manifest.json (not a stack backup)"


def test_manifest_lists_a_missing_file(good, tmp_path):
    bad = repack(good, tmp_path / "bad.tar.gz",
                 lambda i, d: [] if i.name.endswith("webui.db-wal") else [(i, d)])
    assert refused(bad) == "volumes/open-webui-data/webui.db-wal is listed in the manifest but missing"


def test_extra_file_not_in_manifest(good, tmp_path):
    def edit(info, data):
        if info.name == "manifest.json":
            extra = tarfile.TarInfo("volumes/open-webui-data/sneaky.py")
            return [(extra, b"print(1)"), (info, data)]
        return [(info, data)]
    assert refused(repack(good, tmp_path / "bad.tar.gz", edit)) == \
        "volumes/open-webui-data/sneaky.py is not listed in the manifest"


def test_manifest_of_another_format(good, tmp_path):
    def edit(info, data):
        if info.name == "manifest.json":
            d = json.loads(data)
            d["format"] = "something-else/9"
            data = json.dumps(d).encode()
        return [(info, data)]
    assert refused(repack(good, tmp_path / "bad.tar.gz", edit)) == \
        f"manifest format 'something-else/9' is not {FORMAT!r}"


def crafted(tmp_path, info: tarfile.TarInfo, data: bytes | None = None):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        t.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.mark.parametrize(("name", "kind", "problem"), [
    ("../../etc/cron.d/x", tarfile.REGTYPE, "entry '../../etc/cron.d/x' escapes the archive (..)"),
    ("volumes/open-webui-data/../../x", tarfile.REGTYPE,
     "entry 'volumes/open-webui-data/../../x' escapes the archive (..)"),
    ("/etc/passwd", tarfile.REGTYPE, "entry '/etc/passwd' has an absolute path"),
    ("volumes/open-webui-data/l", tarfile.SYMTYPE, "entry 'volumes/open-webui-data/l' is a link"),
    ("volumes/open-webui-data/h", tarfile.LNKTYPE, "entry 'volumes/open-webui-data/h' is a link"),
    ("volumes/open-webui-data/dev", tarfile.CHRTYPE,
     "entry 'volumes/open-webui-data/dev' is not a regular file or directory"),
    ("volumes/open-webui-data/fifo", tarfile.FIFOTYPE,
     "entry 'volumes/open-webui-data/fifo' is not a regular file or directory"),
    ("elsewhere/file", tarfile.REGTYPE, "entry 'elsewhere/file' is outside volumes/<volume>/"),
    ("volumes/other-volume/file", tarfile.REGTYPE,
     "entry 'volumes/other-volume/file' is outside volumes/<volume>/"),
])
def test_crafted_entries_are_refused_before_anything_else(tmp_path, name, kind, problem):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/shadow" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    data = b"x" if kind == tarfile.REGTYPE else None
    assert member_problem(info) == problem
    whole = refused(crafted(tmp_path, info, data))
    if name == "elsewhere/file":  # the first entry of a tarball that is no backup at all
        assert whole.startswith("is not a backup made by this stack (it starts with 'elsewhere/file'")
    else:
        assert whole == problem


def test_a_tarball_of_something_else_is_named_as_not_a_backup(tmp_path):
    src = tmp_path / "project"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.txt").write_text("hello")
    path = tmp_path / "project.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        t.add(src, arcname=".")
    assert refused(path).startswith("is not a backup made by this stack (it starts with '.'")


def test_traversal_in_a_valid_looking_archive_is_refused_even_with_a_manifest(good, tmp_path):
    def edit(info, data):
        if info.name == "manifest.json":
            evil = tarfile.TarInfo("volumes/open-webui-data/../../../root/.ssh/authorized_keys")
            return [(evil, b"ssh-rsa AAA"), (info, data)]
        return [(info, data)]
    assert "escapes the archive" in refused(repack(good, tmp_path / "bad.tar.gz", edit))


def test_parse_manifest_rejects_bad_entries():
    base = {"format": FORMAT, "created_at": "t", "stack_version": "0.1.0", "project": "p",
            "images": {}, "openwebui_version": "0.12.4", "volumes": ["open-webui-data"], "files": {}}
    assert parse_manifest(json.dumps(base)).volumes == ("open-webui-data",)
    with pytest.raises(ValueError, match="needs a sha256"):
        parse_manifest(json.dumps({**base, "files": {"volumes/open-webui-data/x": {"sha256": "zz", "size": 1}}}))
    with pytest.raises(ValueError, match="must be some of"):
        parse_manifest(json.dumps({**base, "volumes": ["../etc"]}))
    with pytest.raises(ValueError, match="'openwebui_version' is missing"):
        parse_manifest(json.dumps({k: v for k, v in base.items() if k != "openwebui_version"}))
    with pytest.raises(ValueError, match="not JSON"):
        parse_manifest(b"\xff")


def test_gzip_of_garbage_tar(tmp_path):
    bad = tmp_path / "g.tar.gz"
    bad.write_bytes(gzip.compress(b"\x01" * 2048))
    assert refused(bad).startswith("not a readable .tar.gz")
