"""The sync's decisions from data alone: which files Open WebUI can read, and the diff
between a folder and a collection."""

from __future__ import annotations

import hashlib

import pytest

from stackctl.knowledge.plan import (
    MIB,
    Limits,
    LocalFile,
    RemoteFile,
    Skip,
    Update,
    ext_of,
    plan,
    why_not,
)


def local(rel: str, text: bytes = b"some text\n") -> LocalFile:
    return LocalFile(rel=rel, size=len(text), sha256=hashlib.sha256(text).hexdigest(), head=text[:8192])


def remote(rel: str, text: bytes = b"some text\n", fid: str | None = None, ours: bool = True) -> RemoteFile:
    return RemoteFile(id=fid or f"id-{rel}", rel=rel, sha256=hashlib.sha256(text).hexdigest(), ours=ours)


NO_LIMITS = Limits()


@pytest.mark.parametrize("rel,ext", [("a/b.MD", "md"), ("Dockerfile", ""), ("x.tar.gz", "gz"), ("dir.v2/notes", "")])
def test_the_extension_is_what_follows_the_files_last_dot(rel, ext):
    assert ext_of(rel) == ext


@pytest.mark.parametrize("rel,content", [
    ("notes.md", b"# notes"), ("manual.pdf", b"%PDF-1.7\n\0\0binary"), ("deck.pptx", b"PK\3\4\0\0"),
    ("old-sheet.xls", b"\xd0\xcf\x11\xe0\0"),
    ("script.py", b"print(1)"), ("README", b"plain text without an extension"), ("notes.adoc", b"= Title"),
    ("latin1.txt", "caf\xe9".encode("latin-1")),
])
def test_documents_and_text_are_readable(rel, content):
    assert why_not(local(rel, content), NO_LIMITS) is None


def test_an_empty_file_is_skipped_not_refused():
    assert why_not(local("empty.txt", b""), NO_LIMITS) == Skip("empty.txt", "empty: nothing to index")


def test_a_binary_file_of_no_known_document_type_is_skipped_with_its_extension():
    s = why_not(local("photo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), NO_LIMITS)
    assert s is not None and not s.refused
    assert s.reason.startswith("binary file (.png): ")


def test_a_binary_file_is_found_by_a_nul_byte_in_its_first_8_KiB_like_open_webui_does():
    late_nul = b"a" * 8192 + b"\0"
    assert why_not(LocalFile("blob", len(late_nul), "h", late_nul[:8192]), NO_LIMITS) is None
    assert why_not(local("blob", b"ab\0cd"), NO_LIMITS).reason.startswith("binary file (a file without an extension)")


@pytest.mark.parametrize("ext", ["doc", "epub", "msg", "odt", "ppt"])
def test_formats_that_need_unstructured_are_skipped_with_what_to_save_instead(ext):
    s = why_not(local(f"old.{ext}", b"\xd0\xcf\x11\xe0\0"), NO_LIMITS)
    assert s == Skip(f"old.{ext}", f".{ext} needs the optional 'unstructured' package, which Open WebUI's image "
                                   "does not ship — save it as PDF, .docx, .pptx or .xlsx")


def test_a_file_over_the_upload_limit_is_refused_naming_its_size_the_limit_and_the_setting():
    big = LocalFile("scan.pdf", 3 * MIB + 1, "h", b"%PDF")
    s = why_not(big, Limits(max_mb=3))
    assert s is not None and s.refused
    assert s.reason.startswith("3.0 MB is over Open WebUI's upload limit of 3 MB (RAG_FILE_MAX_SIZE)")
    assert why_not(LocalFile("scan.pdf", 3 * MIB, "h", b"%PDF"), Limits(max_mb=3)) is None


def test_an_extension_outside_open_webuis_allowed_list_is_skipped():
    s = why_not(local("a.txt"), Limits(allowed_exts=("md", "pdf")))
    assert s == Skip("a.txt", ".txt is not among Open WebUI's allowed file types (md, pdf)")
    assert why_not(local("a.md"), Limits(allowed_exts=("md", "pdf"))) is None


def test_a_new_folder_is_all_added_in_path_order():
    p = plan([local("b.md"), local("a/z.md"), local("a.md")], [], NO_LIMITS)
    assert [f.rel for f in p.add] == ["a.md", "a/z.md", "b.md"]
    assert (p.update, p.remove, p.skip, p.unchanged) == ((), (), (), 0)


def test_an_unchanged_folder_uploads_nothing():
    files = [local("a.md", b"A"), local("sub/b.txt", b"B")]
    p = plan(files, [remote("a.md", b"A"), remote("sub/b.txt", b"B")], NO_LIMITS)
    assert p.uploads == 0 and p.remove == () and p.unchanged == 2


def test_a_changed_file_is_replaced_and_a_deleted_one_removed():
    p = plan([local("a.md", b"A2")], [remote("a.md", b"A1"), remote("gone.md", b"G")], NO_LIMITS)
    assert p.add == ()
    assert p.update == (Update(local("a.md", b"A2"), (remote("a.md", b"A1"),)),)
    assert p.remove == (remote("gone.md", b"G"),)


def test_files_added_to_the_collection_by_hand_are_left_alone_and_counted():
    p = plan([local("a.md")], [remote("a.md"), remote("by-hand.pdf", b"x", ours=False),
                               remote("a.md", b"other", fid="hand-a", ours=False)], NO_LIMITS)
    assert (p.uploads, p.remove, p.unchanged, p.foreign) == (0, (), 1, 2)


def test_copies_of_one_path_from_an_interrupted_run_collapse_to_the_current_one():
    p = plan([local("a.md", b"new")], [remote("a.md", b"old", fid="1"), remote("a.md", b"new", fid="2"),
                                       remote("a.md", b"new", fid="3")], NO_LIMITS)
    assert p.uploads == 0 and p.unchanged == 1
    assert [r.id for r in p.remove] == ["1", "3"]


def test_copies_none_of_which_is_current_are_all_replaced_by_one_upload():
    p = plan([local("a.md", b"new")], [remote("a.md", b"v1", fid="1"), remote("a.md", b"v2", fid="2")], NO_LIMITS)
    assert len(p.update) == 1 and [r.id for r in p.update[0].old] == ["1", "2"]
    assert p.remove == ()


def test_a_file_that_cannot_be_synced_now_keeps_its_last_synced_version():
    too_big = LocalFile("big.pdf", 30 * MIB, "changed", b"%PDF")
    unreadable = [Skip("locked.md", "cannot be read (permission denied) — …", refused=True)]
    p = plan([too_big], [remote("big.pdf", b"v1"), remote("locked.md")], Limits(max_mb=20), unreadable)
    assert p.remove == () and p.uploads == 0
    assert [(s.rel, s.refused) for s in p.skip] == [("big.pdf", True), ("locked.md", True)]


def test_files_under_a_folder_that_could_not_be_listed_are_kept():
    unreadable = [Skip("private/", "cannot be read (permission denied) — …", refused=True)]
    p = plan([], [remote("private/a.md"), remote("privateer.md")], NO_LIMITS, unreadable)
    assert [r.rel for r in p.remove] == ["privateer.md"]


def test_a_file_that_became_unreadable_by_type_is_skipped_and_not_removed():
    p = plan([local("a.md", b"")], [remote("a.md")], NO_LIMITS)
    assert p.remove == () and p.skip == (Skip("a.md", "empty: nothing to index"),)
