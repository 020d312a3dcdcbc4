"""Backup archives: writing (atomic, 0600, hashed) and verification on crafted tarballs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import stat
import tarfile
import time

import pytest

from stackctl.console import cmd
from stackctl.day2.archive import (
    FORMAT,
    LIMITS_OVERRIDE,
    ArchiveError,
    ArchiveWriter,
    GiB,
    Limits,
    Manifest,
    member_problem,
    open_verified,
    parse_manifest,
    parse_size,
    restore_limits,
    size_limit,
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


# -- limits: refused on the header, before anything big is read (issue 13 item 5) --------

def sparse_bomb(path, size=50 * 10**9):
    """A GNU sparse entry of ``size`` bytes holding no data: ~100 bytes on disk."""
    info = tarfile.TarInfo("volumes/open-webui-data/webui.db")
    info.type = tarfile.GNUTYPE_SPARSE
    buf = bytearray(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
    buf[386:398] = tarfile.itn(size, 12, tarfile.GNU_FORMAT)  # one hole-ended map entry: offset …
    buf[398:410] = tarfile.itn(0, 12, tarfile.GNU_FORMAT)     # … 0 bytes of data
    buf[483:495] = tarfile.itn(size, 12, tarfile.GNU_FORMAT)  # real size
    buf[148:156] = b" " * 8
    buf[148:156] = b"%06o\0 " % sum(buf[:512])
    path.write_bytes(gzip.compress(bytes(buf) + tarfile.NUL * 1024, mtime=0))
    return path


def test_a_tiny_archive_with_a_50_gb_sparse_member_is_refused_without_reading_it(tmp_path):
    bomb = sparse_bomb(tmp_path / "bomb.tar.gz")
    assert bomb.stat().st_size < 200
    with tarfile.open(bomb) as t:  # what it claims: a 50 GB webui.db
        assert t.next().size == 50 * 10**9
    t0 = time.monotonic()
    assert refused(bomb) == "entry 'volumes/open-webui-data/webui.db' is a sparse file"
    assert time.monotonic() - t0 < 5  # hashing the 50 GB of zeros it stands for takes minutes


def header_only(path, name, size, pad=1 << 20):
    """A regular entry claiming ``size`` bytes, followed by ``pad`` zeros (it is cut short)."""
    info = tarfile.TarInfo(name)
    info.size = size
    path.write_bytes(gzip.compress(info.tobuf(tarfile.PAX_FORMAT) + tarfile.NUL * pad, mtime=0))
    return path


def test_a_member_over_the_default_size_limit_is_refused_on_its_header(tmp_path):
    big = header_only(tmp_path / "big.tar.gz", "volumes/open-webui-data/webui.db", 50 * 10**9)
    msg = refused(big)
    assert msg.startswith("expands to more than 8.0 GiB (at 'volumes/open-webui-data/webui.db': 46.6 GiB); "
                          "the size limit is the default floor")
    assert msg.endswith(f"— if you trust it, raise it with `{cmd('restore FILE --max-size SIZE')}`")


def test_the_total_size_limit_counts_every_member(good):
    with pytest.raises(ArchiveError) as e:
        verify(good, Limits(max_bytes=5100, why="a test limit"))
    assert "expands to more than 5.0 KiB (at 'volumes/open-webui-data/webui.db-wal': 100 bytes)" in str(e.value)
    assert "the size limit is a test limit" in str(e.value)
    assert verify(good, Limits(max_bytes=5121)).total_bytes == 5121  # the exact total passes


def test_the_entry_count_is_capped(good):
    with tarfile.open(good) as t:
        entries = len(t.getmembers())
    assert verify(good, Limits(max_files=entries)).files
    hint = re.escape(cmd("restore FILE --max-files N"))
    with pytest.raises(ArchiveError, match=rf"has more than {entries - 1} entries \(the entry limit\) — "
                                           rf"if you trust it, raise it with `{hint}`"):
        verify(good, Limits(max_files=entries - 1))


def test_a_huge_manifest_is_refused_before_it_is_read(good, tmp_path):
    def edit(info, data):
        if info.name == "manifest.json":
            d = json.loads(data)
            d["padding"] = "x" * (2 << 20)
            data = json.dumps(d).encode()
        return [(info, data)]
    bad = repack(good, tmp_path / "fat.tar.gz", edit)
    assert verify(bad)  # the default allows it (50 MiB for 100,000 entries) …
    with pytest.raises(ArchiveError, match=r"manifest.json is 2.0 MiB, over the manifest limit of 1.0 MiB "
                                           r"\(512 bytes per allowed entry\) — if you trust it, raise it"):
        verify(bad, Limits(max_files=20))  # … 1 MiB + 20 × 512 bytes does not


def test_headers_and_trailers_count_against_a_byte_budget(good, tmp_path):
    """A pax header is read whole by tarfile before any member check: a budget bounds it."""
    fat = tmp_path / "pax.tar.gz"
    info = tarfile.TarInfo("volumes/open-webui-data/x")
    info.pax_headers = {"comment": "y" * (4 << 20)}
    fat.write_bytes(gzip.compress(info.tobuf(tarfile.PAX_FORMAT) + tarfile.NUL * 1024, mtime=0))
    small = Limits(max_bytes=1000, max_files=1, why="a test limit")
    assert refused_with(fat, small).startswith("expands past 2.0 MiB of tar data (the size limit 1000 bytes")
    trailer = tmp_path / "trailer.tar.gz"
    trailer.write_bytes(gzip.compress(gzip.decompress(good.read_bytes()) + tarfile.NUL * (8 << 20), mtime=0))
    assert verify(trailer).files  # zeros after the end are fine …
    assert refused_with(trailer, Limits(max_bytes=6000, max_files=20)).startswith("expands past")  # … up to the budget


def refused_with(path, limits) -> str:
    with pytest.raises(ArchiveError) as e:
        verify(path, limits)
    return str(e.value)[len(path.name) + 2:]


def test_the_default_size_limit_follows_the_live_data():
    assert size_limit(0).max_bytes == 8 * GiB
    assert size_limit(1 * GiB).why == "the floor: 4× the 1.0 GiB of live data is less"
    assert size_limit(10 * GiB).max_bytes == 40 * GiB
    assert size_limit(10 * GiB).why == "4× the 10.0 GiB of live data the restore replaces"
    token = LIMITS_OVERRIDE.set({"max_bytes": 100 * GiB, "max_files": 7})
    try:
        over = restore_limits(10 * GiB)
    finally:
        LIMITS_OVERRIDE.reset(token)
    assert (over.max_bytes, over.max_files, over.why) == (100 * GiB, 7, "set by --max-size")
    assert restore_limits(10 * GiB).max_bytes == 40 * GiB  # the override ends with its block
    assert [parse_size(s) for s in ("20G", "500M", "1.5T", "123", "4gib")] == \
        [20 * GiB, 500 << 20, int(1.5 * (1 << 40)), 123, 4 * GiB]
    with pytest.raises(ValueError, match="'lots' is not a size"):
        parse_size("lots")


# -- verify and stream from one open file (issue 13 item 7) ---------------------------------

def restored_files(chunks) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as t:
        return {m.name: t.extractfile(m).read() for m in t if m.isfile()}


def other_archive(tmp_path, files) -> bytes:
    path = tmp_path / "other" / "p-backup-y.tar.gz"
    with ArchiveWriter(path) as w:
        w.add_volume("open-webui-data", volume_tar(files))
        w.commit(manifest_for(w))
    return path.read_bytes()


def test_an_archive_swapped_after_verification_is_not_what_gets_restored(good, tmp_path):
    evil = {"webui.db": b"SQLite format 3\0" + b"EVIL" * 100, "uploads/a.txt": b"pwned"}
    swapped = tmp_path / "swapped.tar.gz"
    swapped.write_bytes(other_archive(tmp_path, evil))  # a valid archive of other data
    archive = open_verified(good)
    swapped.replace(good)  # the path now names the other archive
    got = restored_files(volume_stream(archive, "open-webui-data"))
    assert got["open-webui-data/webui.db"] == FILES["webui.db"]  # exactly what was verified
    assert got["open-webui-data/uploads/a.txt"] == b"hello"
    archive.close()


def test_an_archive_rewritten_in_place_after_verification_is_refused_while_streaming(good, tmp_path):
    tampered = repack(good, tmp_path / "t.tar.gz",
                      lambda i, d: [(i, b"HELLO" if i.name.endswith("uploads/a.txt") else d)])
    with open_verified(good) as archive:
        with open(good, "r+b") as fh:  # same inode, other bytes
            fh.write(tampered.read_bytes())
            fh.truncate()
        with pytest.raises(ArchiveError, match=r"uploads/a\.txt changed after the archive was verified"):
            b"".join(volume_stream(archive, "open-webui-data"))


# -- credentials in the archive (issue 13 item 11) ------------------------------------------

SECRETS = {"WEBUI_ADMIN_PASSWORD": "pw-" + "s" * 40, "WEBUI_SECRET_KEY": "k" * 43,
           "WEBUI_ADMIN_EMAIL": "boss@example.org"}


def test_credentials_go_round_the_archive_and_never_into_a_repr(tmp_path):
    path = tmp_path / "p-backup-s.tar.gz"
    with ArchiveWriter(path) as w:
        w.add_volume("open-webui-data", volume_tar({"webui.db": b"x"}))
        w.commit(manifest_for(w, secrets=dict(SECRETS)))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    m = verify(path)
    assert m.secrets == SECRETS
    assert not any(v in repr(m) for v in SECRETS.values())


def test_an_archive_without_credentials_has_no_secrets_key(good):
    with tarfile.open(good) as t:
        assert "secrets" not in json.loads(t.extractfile("manifest.json").read())
    assert verify(good).secrets == {}


def test_parse_manifest_rejects_credentials_that_cannot_be_env_lines():
    base = {"format": FORMAT, "created_at": "t", "stack_version": "0.1.0", "project": "p",
            "images": {}, "openwebui_version": "0.12.4", "volumes": ["open-webui-data"], "files": {}}
    for bad in ({"WEBUI_ADMIN_PASSWORD": "a\nEVIL=1"}, {"lower": "x"}, {"K": 5}, ["K"]):
        with pytest.raises(ValueError, match=r"'secrets' must map \.env keys to one-line values"):
            parse_manifest(json.dumps({**base, "secrets": bad}))
