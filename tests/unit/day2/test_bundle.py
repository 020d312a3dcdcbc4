"""Offline bundles without Docker: the format, the whole-file verification, and load's
all-or-nothing, against an in-memory image store (the seam `save`/`load` take).

The real engine round trip, and the refusals proving no image appeared there, are in
tests/e2e/day2/test_bundle.py. Here: every way a bundle can be bad is refused with one
line naming it, before the store is touched or a folder written; a save that fails
half-way leaves no file; Ctrl-C half-way through a load leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from stackctl.config import envfile
from stackctl.config.settings import BASE_IMAGE_KEY, IMAGE_KEYS, SERVICES
from stackctl.config.stack import Stack
from stackctl.day2 import bundle as b
from stackctl.errors import StackError, UsageError
from tests.plugins.common import FIXTURES

MODEL = FIXTURES / "tiny-model"
BUILT = {s.image_key for s in SERVICES if s.build}


def _id(n: int) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


class FakeStore:
    """An image store in memory: a "save stream" is some bytes; loading them gives back
    the image they were saved from (as docker load does, by id)."""

    def __init__(self, platform=("linux", "amd64")) -> None:
        self.tags: dict[str, str] = {}           # ref -> id
        self.blobs: dict[str, bytes] = {}        # id -> save stream
        self.facts: dict[str, b.ImageFacts] = {}  # id -> facts
        self.loads = 0
        self._platform = platform
        self.on_chunk = None  # called with each chunk a load receives (a fault seam)

    def add(self, ref: str, n: int, size: int = 300_000, arch: str = "amd64") -> None:
        i = _id(n)
        self.tags[ref] = i
        self.blobs[i] = hashlib.sha256(i.encode()).digest() * (size // 32)
        self.facts[i] = b.ImageFacts(i, "linux", arch, size)

    def inspect(self, ref):
        i = self.tags.get(ref) or (ref if ref in self.tags.values() else None)
        return self.facts[i] if i else None

    def save(self, ref):
        data = self.blobs[self.tags[ref]]
        for k in range(0, len(data), 65536):
            yield data[k:k + 65536]

    def load(self, chunks):
        self.loads += 1
        got = b""
        for c in chunks:
            if self.on_chunk:
                self.on_chunk(c)
            got += c
        for i, blob in self.blobs.items():
            if blob == got:
                ref = next(r for r, x in self.saved_refs.items() if x == i)
                self.tags[ref] = i
                return
        raise StackError("docker load failed: not an image")

    def tag(self, image_id, ref):
        self.tags[ref] = image_id

    def remove(self, ref_or_id):  # an image no tag names is gone (nothing else here holds it)
        self.tags.pop(ref_or_id, None)

    def platform(self):
        return self._platform


def make_stack(tmp_path: Path, store: FakeStore) -> Stack:
    """A stack whose .env names an image for every key, each present in ``store``."""
    env_file = tmp_path / "stack.env"
    refs = {k: f"example.test/{k.lower().replace('_', '-')}:1" for k in b.BUNDLE_KEYS}
    env_file.write_text("COMPOSE_PROFILES=\n" + "".join(f"{k}={v}\n" for k, v in refs.items()))
    envfile.ensure(env_file)
    for n, ref in enumerate(refs.values()):
        store.add(ref, n)
    store.saved_refs = dict(store.tags)
    return Stack(tmp_path, env_file, envfile.load(env_file))


@pytest.fixture
def made(tmp_path):
    """(bundle path, stack, store it was saved from) with the tiny model folder in it."""
    store = FakeStore()
    stack = make_stack(tmp_path, store)
    path = tmp_path / "out" / "stack.bundle"
    b.save(path, stack, store, model_path=MODEL)
    return path, stack, store


def fresh_store(saved: FakeStore) -> FakeStore:
    """An engine that has none of the images (a machine offline): same platform."""
    s = FakeStore()
    s.blobs, s.facts, s.saved_refs = dict(saved.blobs), dict(saved.facts), saved.saved_refs
    return s


def members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(i, tar.extractfile(i).read() if i.isfile() else b"") for i in tar]


def write_tar(path: Path, items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in items:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def file_info(name: str, **kw) -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(i, k, v)
    return i


def refused(path: Path) -> str:
    with pytest.raises(b.BundleError) as e:
        b.open_bundle(path)
    msg = str(e.value)
    assert "\n" not in msg and e.value.exit_code == 1
    assert msg.startswith(f"{path.name}: ") and "refused; nothing was loaded or written" in msg
    return msg


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- the round trip ------------------------------------------------------------------------


def test_round_trip_gives_back_every_image_by_id_and_the_model_folder_byte_for_byte(made, tmp_path):
    path, stack, saved = made
    names = [i.name for i, _ in members(path)]
    assert names[0] == b.MARKER and names[-1] == b.MANIFEST
    with b.open_bundle(path) as v:
        m = v.manifest
        assert {i.key for i in m.images} == set(b.BUNDLE_KEYS)
        assert all(i.id == saved.tags[i.ref] for i in m.images)
        assert m.model_name == MODEL.name and m.stack_version
        store = fresh_store(saved)
        other_env = {k: "elsewhere/x:1" for k in IMAGE_KEYS}
        res = b.load(v, store, model_dir=tmp_path / "models" / "m", env_file=stack.env_file, env=other_env,
                     models_home=tmp_path / "models")
    assert store.tags == saved.tags  # every reference, the same id
    assert tree(tmp_path / "models" / "m") == tree(MODEL)
    assert set(res.loaded) == {f"{i.key}={i.ref}" for i in m.images}
    assert res.env_updates == {i.key: i.ref for i in m.images}
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]


def test_a_model_folder_goes_to_models_home_by_default_and_present_images_are_not_loaded(made, tmp_path):
    path, stack, saved = made
    with b.open_bundle(path) as v:
        res = b.load(v, saved, model_dir=None, env_file=stack.env_file, env=stack.env,
                     models_home=tmp_path / "home")
    assert saved.loads == 0 and len(res.present) == len(b.BUNDLE_KEYS)
    assert res.model_dir == tmp_path / "home" / MODEL.name and tree(res.model_dir) == tree(MODEL)
    assert res.env_updates == {}


def test_a_manifest_lists_each_images_key_reference_id_size_and_checksum(made):
    path, _, _ = made
    manifest = json.loads(members(path)[-1][1])
    assert manifest["format"] == b.FORMAT
    data = dict((i.name, d) for i, d in members(path))
    for e in manifest["images"]:
        assert e["size"] == len(data[e["member"]])
        assert e["sha256"] == hashlib.sha256(data[e["member"]]).hexdigest()
    for name, e in manifest["model_files"].items():
        assert e["sha256"] == hashlib.sha256(data[name]).hexdigest()


# -- save's safety -------------------------------------------------------------------------


def test_save_refuses_to_overwrite_unless_forced(made):
    path, stack, store = made
    before = path.read_bytes()
    with pytest.raises(UsageError, match=r"already exists .* --force"):
        b.save(path, stack, store)
    assert path.read_bytes() == before
    b.save(path, stack, store, force=True)
    assert b.open_bundle(path).manifest.model_name == ""


def test_a_save_that_fails_half_way_leaves_no_file(tmp_path):
    store = FakeStore()
    stack = make_stack(tmp_path, store)
    real = store.save

    def broken(ref):
        yield from list(real(ref))[:2]
        raise KeyboardInterrupt  # Ctrl-C, or the engine dying mid-stream

    store.save = broken
    with pytest.raises(KeyboardInterrupt):
        b.save(tmp_path / "x.bundle", stack, store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.env"]


def test_save_names_every_missing_image_at_once_and_writes_nothing(tmp_path):
    store = FakeStore()
    stack = make_stack(tmp_path, store)
    required = [k for k in b.BUNDLE_KEYS if k not in BUILT and k in (*[s.image_key for s in SERVICES
                                                                       if s.name in stack.services],
                                                                     BASE_IMAGE_KEY)]
    for k in required:
        store.tags.pop(stack.env[k])
    for k in BUILT:  # built by up: left out, said so
        store.tags.pop(stack.env[k])
    with pytest.raises(StackError) as e:
        b.save(tmp_path / "x.bundle", stack, store)
    msg = str(e.value)
    assert all(f"{k}={stack.env[k]}" in msg for k in required) and f"docker pull {stack.env[required[0]]}" in msg
    assert not any(k in msg for k in BUILT) and e.value.exit_code == 2
    assert not (tmp_path / "x.bundle").exists()


def test_images_up_builds_are_left_out_with_a_note_when_not_built(tmp_path):
    store = FakeStore()
    stack = make_stack(tmp_path, store)
    for k in BUILT:
        store.tags.pop(stack.env[k])
    res = b.save(tmp_path / "x.bundle", stack, store)
    assert {i.key for i in res.manifest.images} == set(b.BUNDLE_KEYS) - BUILT
    assert all(any(n.startswith(f"{k}=") and "not built yet" in n for n in res.manifest.skipped) for k in BUILT)


def test_a_model_folder_with_a_link_is_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "genai_config.json").write_text("{}")
    (folder / "model.onnx").symlink_to("/etc/passwd")
    store = FakeStore()
    stack = make_stack(tmp_path, store)
    with pytest.raises(UsageError, match=r"model\.onnx is a link"):
        b.save(tmp_path / "x.bundle", stack, store, model_path=folder)
    assert not (tmp_path / "x.bundle").exists()


# -- bad bundles: one line, nothing touched ------------------------------------------------


def test_a_truncated_bundle_is_refused_wherever_it_is_cut(made, tmp_path):
    path, _, _ = made
    data = path.read_bytes()
    for cut in (len(data) - 1024 - 600, len(data) // 2, 1000, 512, 100):
        short = tmp_path / f"cut{cut}.bundle"
        short.write_bytes(data[:cut])
        msg = refused(short)
        assert any(w in msg for w in ("truncated", "not a bundle", "no manifest")), msg


def test_a_flipped_byte_anywhere_in_the_data_or_a_header_is_refused(made, tmp_path):
    path, _, _ = made
    data = path.read_bytes()
    with tarfile.open(path) as tar:
        infos = tar.getmembers()
    image = next(i for i in infos if i.name.startswith(b.IMAGES))
    model = next(i for i in infos if i.name.startswith(b.MODEL + "/"))
    for at, want in ((image.offset_data + 5000, f"checksum mismatch for {image.name}"),
                     (model.offset_data + 3, f"checksum mismatch for {model.name}"),
                     (model.offset + 200, f"a damaged entry header at byte {model.offset:,}")):
        bad = bytearray(data)
        bad[at] ^= 0x01
        p = tmp_path / f"flip{at}.bundle"
        p.write_bytes(bytes(bad))
        assert want in refused(p)


def test_a_manifest_lying_about_a_checksum_is_refused(made, tmp_path):
    path, _, _ = made
    items = members(path)
    manifest = json.loads(items[-1][1])
    manifest["images"][0]["sha256"] = "0" * 64
    items[-1] = (items[-1][0], json.dumps(manifest).encode())
    bad = tmp_path / "lying.bundle"
    write_tar(bad, items)
    assert f"checksum mismatch for {manifest['images'][0]['member']}" in refused(bad)


def test_a_member_the_manifest_does_not_list_is_refused(made, tmp_path):
    path, _, _ = made
    items = members(path)
    items.insert(-1, (file_info(f"{b.MODEL}/extra.bin"), b"not listed"))
    bad = tmp_path / "extra.bundle"
    write_tar(bad, items)
    assert "model/extra.bin is not listed in the manifest" in refused(bad)


def test_a_member_the_manifest_lists_but_the_file_lacks_is_refused(made, tmp_path):
    path, _, _ = made
    items = [(i, d) for i, d in members(path) if i.name != f"{b.MODEL}/tokenizer.json"]
    bad = tmp_path / "missing.bundle"
    write_tar(bad, items)
    assert "model/tokenizer.json is listed in the manifest but missing" in refused(bad)


def test_a_tarball_that_is_not_a_bundle_is_refused_at_its_first_header(tmp_path):
    other = tmp_path / "backup.tar"
    write_tar(other, [(file_info("volumes/x/webui.db"), b"data"), (file_info("manifest.json"), b"{}")])
    assert "is not a bundle made by this stack (it starts with 'volumes/x/webui.db'" in refused(other)
    junk = tmp_path / "junk.bundle"
    junk.write_bytes(b"PK\x03\x04 a zip, say" * 100)
    assert "is not a bundle made by this stack (not a tar file" in refused(junk)
    empty = tmp_path / "empty.bundle"
    empty.write_bytes(b"")
    assert "not a bundle" in refused(empty)


def _marker() -> tuple[tarfile.TarInfo, bytes]:
    return file_info(b.MARKER), f"{b.FORMAT}\n".encode()


@pytest.mark.parametrize(("member", "want"), [
    (file_info("/etc/cron.d/x"), "absolute path"),
    (file_info("model/../../x"), "escapes the bundle"),
    (file_info("model/link", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "is a link"),
    (file_info("model/hard", type=tarfile.LNKTYPE, linkname="bundle-format"), "is a link"),
    (file_info("model/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3), "not a regular file"),
    (file_info("model/fifo", type=tarfile.FIFOTYPE), "not a regular file"),
    (file_info("etc/passwd"), "is not part of a bundle"),
])
def test_path_tricks_links_and_devices_are_refused(tmp_path, member, want):
    bad = tmp_path / "tricks.bundle"
    write_tar(bad, [_marker(), (member, b"x"), (file_info(b.MANIFEST), b"{}")])
    assert want in refused(bad)


def test_a_sparse_member_is_refused(tmp_path):
    bad = tmp_path / "s.bundle"
    write_tar(bad, [_marker(), (file_info("model/a"), b"x" * 600)])
    data = bytearray(bad.read_bytes())
    hdr = 512 + 512  # the second member's header
    data[hdr + 156] = ord("S")  # GNU sparse type
    chk = sum(data[hdr:hdr + 148]) + 8 * 32 + sum(data[hdr + 156:hdr + 512])
    data[hdr + 148:hdr + 156] = b"%06o\0 " % chk
    bad.write_bytes(bytes(data))
    assert "entry 'model/a' is a sparse file" in refused(bad)


def test_a_member_claiming_more_bytes_than_the_file_holds_is_refused_before_reading(tmp_path):
    bad = tmp_path / "huge.bundle"
    write_tar(bad, [_marker(), (file_info("model/a"), b"x" * 600)])
    data = bytearray(bad.read_bytes())
    hdr = 1024
    data[hdr + 124:hdr + 136] = b"%011o\0" % (1 << 32)  # 4 GiB in a 3 KiB file
    chk = sum(data[hdr:hdr + 148]) + 8 * 32 + sum(data[hdr + 156:hdr + 512])
    data[hdr + 148:hdr + 156] = b"%06o\0 " % chk
    bad.write_bytes(bytes(data))
    assert "truncated: entry 'model/a' says 4.0 GiB" in refused(bad)


def test_anything_after_the_manifest_or_twice_is_refused(made, tmp_path):
    path, _, _ = made
    items = members(path)
    after = tmp_path / "after.bundle"
    write_tar(after, [*items, (file_info("model/late"), b"x")])
    assert "follows manifest.json" in refused(after)
    twice = tmp_path / "twice.bundle"
    write_tar(twice, [*items[:2], items[1], *items[2:]])
    assert "appears twice" in refused(twice)


@pytest.mark.parametrize(("edit", "want"), [
    (lambda m: m["images"][0].update(ref="evil\nWEBUI_ADMIN_PASSWORD=x"), "is not an image reference"),
    (lambda m: m["images"][0].update(key="WEBUI_SECRET_KEY"), "is not one of"),
    (lambda m: m.update(format="foundry-chat-stack-backup/1"), "manifest format"),
    (lambda m: m.update(model_name="../etc"), "is not a folder name"),
    (lambda m: m["images"][0].update(member="../x.tar"), "is not images/<KEY>.tar"),
])
def test_a_manifest_that_does_not_parse_is_refused(made, tmp_path, edit, want):
    path, _, _ = made
    items = members(path)
    manifest = json.loads(items[-1][1])
    edit(manifest)
    items[-1] = (items[-1][0], json.dumps(manifest).encode())
    bad = tmp_path / "manifest.bundle"
    write_tar(bad, items)
    assert want in refused(bad)


def test_a_bundle_for_another_architecture_is_refused_before_anything_is_loaded(made, tmp_path):
    path, stack, saved = made
    store = fresh_store(saved)
    store._platform = ("linux", "arm64")
    with b.open_bundle(path) as v, pytest.raises(b.BundleError, match=r"another platform: .* is linux/amd64, "
                                                                      "this Docker Engine runs linux/arm64"):
        b.load(v, store, model_dir=tmp_path / "m", env_file=stack.env_file, env={}, models_home=tmp_path)
    assert store.loads == 0 and store.tags == {} and not (tmp_path / "m").exists()


def test_an_existing_model_folder_is_never_overwritten(made, tmp_path):
    path, stack, saved = made
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "mine.txt").write_text("keep")
    store = fresh_store(saved)
    with b.open_bundle(path) as v, pytest.raises(UsageError, match="already exists and is not an empty folder"):
        b.load(v, store, model_dir=tmp_path / "m", env_file=stack.env_file, env={}, models_home=tmp_path)
    assert store.loads == 0 and tree(tmp_path / "m") == {"mine.txt": hashlib.sha256(b"keep").hexdigest()}


# -- interrupted or changed under our feet ---------------------------------------------------


def test_ctrl_c_half_way_through_a_load_leaves_no_image_no_folder_and_env_as_it_was(made, tmp_path):
    path, stack, saved = made
    store = fresh_store(saved)
    store.tags["example.test/kept:1"] = _id(99)  # something the user had: untouched
    seen = []

    def strike(chunk):
        seen.append(chunk)
        if store.loads == 3 and len(seen) > 2:
            raise KeyboardInterrupt

    store.on_chunk = strike
    env_before = stack.env_file.read_bytes()
    with b.open_bundle(path) as v, pytest.raises(KeyboardInterrupt):
        b.load(v, store, model_dir=tmp_path / "models" / "m", env_file=stack.env_file, env={},
               models_home=tmp_path / "models")
    assert store.tags == {"example.test/kept:1": _id(99)}  # the two loaded before it are gone again
    assert list((tmp_path / "models").iterdir()) == []  # no folder, no hidden partial one
    assert stack.env_file.read_bytes() == env_before


def test_a_reference_that_named_another_image_gets_it_back_after_a_failed_load(made, tmp_path):
    path, stack, saved = made
    store = fresh_store(saved)
    first = b.open_bundle(path).manifest.images[0]
    store.tags[first.ref] = _id(77)  # the user's own image under the same name
    store.facts[_id(77)] = b.ImageFacts(_id(77), "linux", "amd64", 1)

    def fail_second(chunk):
        if store.loads == 2:
            raise StackError("docker load failed: no space left on device")

    store.on_chunk = fail_second
    with b.open_bundle(path) as v, pytest.raises(StackError, match="no space left"):
        b.load(v, store, model_dir=None, env_file=stack.env_file, env={}, models_home=tmp_path / "models")
    assert store.tags == {first.ref: _id(77)}


def test_bytes_changed_after_verification_never_complete_a_load(made, tmp_path):
    path, _, _ = made
    with b.open_bundle(path) as v:
        image = v.manifest.images[0]
        at = v.members[image.member].offset + 10
        with open(path, "r+b") as fh:  # the same inode: what the open file reads
            fh.seek(at)
            fh.write(b"\xff")
        sent = []
        with pytest.raises(b.BundleError, match="changed after the bundle was verified"):
            for chunk in v.chunks(image.member, hold_last=True):
                sent.append(chunk)
        assert sum(map(len, sent)) < image.size  # the last chunk was held back: docker never saw a whole image


def test_a_missing_file_or_a_directory_is_bad_input(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        b.open_bundle(tmp_path / "nope.bundle")
    with pytest.raises(UsageError, match="is a directory"):
        b.open_bundle(tmp_path)


def test_an_image_rebuilt_while_it_is_saved_stops_the_save_and_leaves_no_file(tmp_path):
    """Seen for real: another build re-tagged the gateway image between inspect and save,
    and the bundle held a stream whose id its manifest did not name."""
    store = FakeStore()
    stack = make_stack(tmp_path, store)
    real = store.save

    def rebuilt_meanwhile(ref):
        yield from real(ref)
        store.add(ref, 1000)  # the same tag, a new id

    store.save = rebuilt_meanwhile
    with pytest.raises(StackError, match=r"changed while it was being saved .* nothing was written"):
        b.save(tmp_path / "x.bundle", stack, store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.env"]


def test_paths_are_read_from_where_the_user_typed_and_hinted_as_they_work_there(monkeypatch, tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setenv("STACK_CWD", str(tmp_path))
    assert b.user_path("x/stack.bundle") == tmp_path / "x" / "stack.bundle"  # not the project root
    assert b.shown_path(root / "models" / "m", root) == str(root / "models" / "m")  # elsewhere: absolute
    monkeypatch.setenv("STACK_CWD", str(root))
    assert b.shown_path(root / "models" / "m", root) == "models/m"  # at the root, as `./stack up` takes it
    assert b.shown_path(tmp_path / "m", root) == str(tmp_path / "m")


def test_a_save_that_would_not_fit_is_refused_before_writing(tmp_path, monkeypatch):
    store = FakeStore()
    stack = make_stack(tmp_path, store)
    real = b.shutil.disk_usage
    monkeypatch.setattr(b.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))  # a nearly full disk
    with pytest.raises(StackError, match=r"the bundle needs about .* has 1000 bytes free") as e:
        b.save(tmp_path / "x.bundle", stack, store)
    assert e.value.exit_code == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["stack.env"]


def test_disk_full_half_way_is_one_line_and_no_file(tmp_path):
    store = FakeStore()
    stack = make_stack(tmp_path, store)
    real = store.save

    def full(ref):
        yield next(iter(real(ref)))
        raise OSError(28, "No space left on device")

    store.save = full
    with pytest.raises(StackError, match=r"failed \(No space left on device\) — nothing was written"):
        b.save(tmp_path / "x.bundle", stack, store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.env"]


def test_disk_full_while_writing_the_model_folder_puts_everything_back(made, tmp_path, monkeypatch):
    path, stack, saved = made
    store = fresh_store(saved)
    real_open = b.os.open
    calls = []

    def full(p, flags, mode=0o777, **kw):  # the third file opened: the second model file
        calls.append(p)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_open(p, flags, mode, **kw)

    monkeypatch.setattr(b.os, "open", full)
    with b.open_bundle(path) as v, pytest.raises(StackError, match=r"model folder .* failed \(No space left"):
        b.load(v, store, model_dir=tmp_path / "models" / "m", env_file=stack.env_file, env={},
               models_home=tmp_path / "models")
    assert store.tags == {} and list((tmp_path / "models").iterdir()) == []
