"""Restore's free-space preflight (with an injected measurement) and the scripts its
swap is made of (COPY, FINGERPRINT, MEASURE), run on folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stackctl.console import Reporter
from stackctl.day2.archive import FileEntry, Manifest
from stackctl.day2.restore import MARGIN, Slot, preflight, space_needed, space_problem, staged_bytes
from stackctl.docker.volumes import (
    COPY,
    FINGERPRINT,
    MEASURE,
    copy_verdict,
    fingerprint_verdict,
    last_progress,
    why_failed,
)
from stackctl.errors import StackError

MiB = 1 << 20
SUM = "0" * 64


def manifest(files: dict[str, int]) -> Manifest:
    return Manifest(created_at="t", stack_version="0.1.0", project="p", images={},
                    openwebui_version="0.12.4", volumes=("open-webui-data", "prometheus-data"),
                    files={n: FileEntry(SUM, size) for n, size in files.items()})


M = manifest({"volumes/open-webui-data/webui.db": 10 * MiB + 1,
              "volumes/open-webui-data/uploads/a.pdf": 100,
              "volumes/prometheus-data/wal/00000001": 4 * MiB})


def test_staged_bytes_counts_whole_blocks_and_folders():
    assert staged_bytes(M, "open-webui-data") == (10 * MiB + 4096) + 4096 + 2 * 4096
    assert staged_bytes(M, "prometheus-data") == 4 * MiB + 4096
    assert staged_bytes(M, "grafana-data") == 0


def test_space_needed_is_staging_plus_rollback_plus_growth_plus_margin():
    owui, prom = staged_bytes(M, "open-webui-data"), staged_bytes(M, "prometheus-data")
    live = {"open-webui-data": 3 * MiB, "prometheus-data": 50 * MiB}
    raw = (owui + 3 * MiB + (owui - 3 * MiB)) + (prom + 50 * MiB + 0)
    assert space_needed(M, ("open-webui-data", "prometheus-data"), live) == raw + raw // 20 + MARGIN


def test_space_problem_names_both_numbers_and_what_to_do():
    assert space_problem(100 * MiB, 100 * MiB) is None
    msg = space_problem(100 * MiB, 2 * MiB)
    assert msg == ("not enough free disk space for the restore: it needs about 100.0 MiB for the staged "
                   "backup and a rollback copy of the current data, and the filesystem Docker keeps "
                   "volumes on has 2.0 MiB free — free some space (`docker system df` shows what Docker "
                   "holds), then retry; refused, nothing was changed")


def slots() -> list[Slot]:
    return [Slot("open-webui-data", "p_open-webui-data", "p_day2-staging-1", "", ("cache",)),
            Slot("prometheus-data", "p_prometheus-data", "p_day2-staging-2", "", ())]


def test_preflight_measures_through_the_injected_function_and_refuses_what_cannot_fit():
    seen = []

    def measure(space_volume, live):
        seen.append((space_volume, live))
        return 40 * MiB, {"p_open-webui-data": 30 * MiB}

    with pytest.raises(StackError) as err:
        preflight(M, slots(), {"p_open-webui-data"}, measure, Reporter.quiet())
    assert err.value.exit_code == 2 and "has 40.0 MiB free" in str(err.value)
    # Free space where the staging volume lives; only live volumes that exist are read.
    assert seen == [("p_day2-staging-1", {"p_open-webui-data": ("cache",)})]


def test_preflight_passes_when_it_fits_and_says_the_numbers():
    rep = Reporter.quiet()
    preflight(M, slots(), set(), lambda space, live: (1 << 40, {}), rep)
    assert "free space: 1.0 TiB; the restore needs about" in rep.console.file.getvalue()


# -- the scripts, on folders ---------------------------------------------------------------------


def copy(mode, src, dst, *keep):
    cp = subprocess.run(["sh", "-c", COPY, "sh", mode, str(src), str(dst), *keep], capture_output=True, text=True)
    return cp.returncode, cp.stdout + cp.stderr


def fp(root, *keep):
    cp = subprocess.run([sys.executable, "-c", FINGERPRINT, str(root), *keep], capture_output=True, text=True)
    return fingerprint_verdict(cp.returncode, cp.stdout + cp.stderr, str(root))


@pytest.fixture
def src(tmp_path):
    s = tmp_path / "src"
    (s / "uploads").mkdir(parents=True)
    (s / "webui.db").write_bytes(b"db" * 1000)
    (s / "uploads" / "a b.txt").write_text("spaces and\nnewlines\n")
    (s / ".hidden").write_text("dotfile")
    (s / "..odd").write_text("two dots")
    (s / "link").symlink_to("webui.db")
    (s / "cache").mkdir()
    (s / "cache" / "blob").write_text("kept in place")
    (s / "uploads").chmod(0o700)
    (s / "webui.db").chmod(0o600)
    s.chmod(0o751)
    return s


def test_copy_keeps_modes_links_and_dotfiles_and_leaves_kept_names(src, tmp_path):
    dst = tmp_path / "dst"
    dst.mkdir()
    code, out = copy("copy", src, dst, "cache")
    copy_verdict(code, out, "src", "dst")
    assert fp(dst) == fp(src, "cache")
    assert not (dst / "cache").exists()
    assert os.readlink(dst / "link") == "webui.db"
    assert (dst.stat().st_mode & 0o777) == 0o751  # the root takes the source's mode


def test_replace_removes_everything_but_the_kept_names(src, tmp_path):
    live = tmp_path / "live"
    (live / "cache").mkdir(parents=True)
    (live / "cache" / "model").write_text("big model")
    (live / "stale.db").write_text("old")
    (live / ".stale").write_text("old")
    code, out = copy("replace", src, live, "cache")
    copy_verdict(code, out, "src", "live")
    assert fp(live, "cache") == fp(src, "cache")
    assert (live / "cache" / "model").read_text() == "big model"
    assert not (live / "stale.db").exists() and not (live / ".stale").exists()


def test_a_copy_that_cannot_complete_fails_loudly(src, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    code, out = copy("copy", src, not_a_dir)
    assert code != 0
    with pytest.raises(StackError, match=r"^exit 1: .*(Not a directory|cannot)"):
        copy_verdict(code, out, "src", "file")
    with pytest.raises(StackError, match=r"its container was killed \(exit 137\)"):
        copy_verdict(137, "progress: 100\n", "src", "dst")
    with pytest.raises(StackError, match="copying src into dst stopped before its end"):
        copy_verdict(0, "progress: 100\n", "src", "dst")  # exit 0 without its last word


@pytest.mark.parametrize("change", ["content", "mode", "link", "new", "removed", "rename"])
def test_the_fingerprint_sees_every_kind_of_change(src, change):
    before = fp(src, "cache")
    if change == "content":
        (src / "webui.db").write_bytes(b"db" * 999 + b"dB")  # same size
    elif change == "mode":
        (src / "webui.db").chmod(0o644)
    elif change == "link":
        (src / "link").unlink()
        (src / "link").symlink_to(".hidden")
    elif change == "new":
        (src / "uploads" / "empty").write_bytes(b"")
    elif change == "removed":
        (src / ".hidden").unlink()
    else:
        (src / "uploads" / "a b.txt").rename(src / "uploads" / "a  b.txt")
    assert fp(src, "cache") != before


def test_the_fingerprint_leaves_out_kept_top_level_names_only(src):
    before = fp(src, "cache")
    (src / "cache" / "blob").write_text("changed cache")
    assert fp(src, "cache") == before
    assert before.files == 4 and before.dirs == 1 and before.other == 1
    assert before.describe() == f"4 files, {2000 + 20 + 7 + 8:,} bytes"


def test_measure_reports_free_space_and_the_data_without_kept_names(src, tmp_path):
    out = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path), f"{src}:cache"],
                         capture_output=True, text=True, check=True).stdout
    d = json.loads(out)
    assert d["free"] > 0
    with_cache = json.loads(subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path), f"{src}:"],
                                           capture_output=True, text=True, check=True).stdout)
    assert 0 < d["used"][str(src)] < with_cache["used"][str(src)]


def test_progress_and_failure_words():
    assert last_progress("a\nprogress: 1\nb\nprogress: 2048\n") == "2048"
    assert last_progress("nothing") is None
    assert why_failed(1, "progress: 5\ncp: error writing '/to/x': No space left on device\n") == \
        "exit 1: cp: error writing '/to/x': No space left on device"
