"""Restore's swap and its failure branches, on folders standing in for volumes.

The operations are the real ones: the same COPY (sh) and FINGERPRINT (python)
scripts restore runs in its throwaway containers, run here on folders. Faults are
injected around them the way they happen for real: a copy that stops half-way
(disk full, container killed) with or without saying so, Ctrl-C, an httpx error
from bringing the stack up, a put-back that fails too. After each, the live folder
is compared file by file with what it held before.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import docker.errors
import httpx
import pytest

from stackctl.console import Reporter
from stackctl.day2.restore import Slot, SwapFailed, swap
from stackctl.docker.volumes import COPY, FINGERPRINT, copy_verdict, fingerprint_verdict
from stackctl.errors import StackError

KEEP = ("cache",)
IMAGE = "owui:test"


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: (type, mode, owner, content or link target)."""
    out = {".": ("d", root.stat().st_mode & 0o7777, root.stat().st_uid)}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        kind = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
        body = os.readlink(p) if kind == "l" else p.read_bytes() if kind == "f" else None
        out[str(p.relative_to(root))] = (kind, st.st_mode & 0o7777, st.st_uid, body)
    return out


class LocalOps:
    """restore's VolumeOps on folders: ``root/<volume>`` is the volume."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, ...]] = []

    def dir(self, volume: str) -> Path:
        return self.root / volume

    def fingerprint(self, volume, keep, label):
        self.calls.append(("fingerprint", volume))
        cp = subprocess.run([sys.executable, "-c", FINGERPRINT, str(self.dir(volume)), *keep],
                            capture_output=True, text=True)
        return fingerprint_verdict(cp.returncode, cp.stdout + cp.stderr, volume)

    def copy(self, src, dst, keep, *, replace, label, total):
        self.calls.append(("replace" if replace else "copy", src, dst))
        cp = subprocess.run(["sh", "-c", COPY, "sh", "replace" if replace else "copy",
                             str(self.dir(src)), str(self.dir(dst)), *keep], capture_output=True, text=True)
        copy_verdict(cp.returncode, cp.stdout + cp.stderr, src, dst)

    def stop_strays(self):
        self.calls.append(("stop_strays",))


class Faulty(LocalOps):
    """LocalOps whose copy into ``dst`` (the n-th such copy) stops half-way: the first
    half of the files land, then ``exc`` is raised — or, with ``exc=None``, it ends
    as if all went well (what a script that ignores a failed cp does)."""

    def __init__(self, root: Path, dst: str, exc: BaseException | None, nth: int = 1) -> None:
        super().__init__(root)
        self.dst, self.exc, self.nth, self.seen = dst, exc, nth, 0

    def copy(self, src, dst, keep, *, replace, label, total):
        if dst != self.dst:
            return super().copy(src, dst, keep, replace=replace, label=label, total=total)
        self.seen += 1
        if self.seen != self.nth:
            return super().copy(src, dst, keep, replace=replace, label=label, total=total)
        self.calls.append(("replace" if replace else "copy", src, dst, "fault"))
        target = self.dir(dst)
        if replace:  # the wipe happened, then part of the copy
            for p in target.iterdir():
                if p.name not in keep:
                    subprocess.run(["rm", "-rf", str(p)], check=True)
        files = sorted(p for p in self.dir(src).rglob("*") if p.is_file() and p.relative_to(self.dir(src)).parts[0] not in keep)
        for p in files[: len(files) // 2]:
            rel = p.relative_to(self.dir(src))
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).write_bytes(p.read_bytes())
        if self.exc is not None:
            raise self.exc


class FakeServices:
    def __init__(self, stop_error: BaseException | None = None) -> None:
        self.events: list[str] = []
        self.stop_error = stop_error

    def stop(self):
        self.events.append("stop")
        if self.stop_error is not None:
            raise self.stop_error

    def start_again(self):
        self.events.append("start_again")


@pytest.fixture
def box(tmp_path):
    """live: the user's data (and a kept cache); staging: the backup's; rollback: empty."""
    live = tmp_path / "live"
    (live / "uploads").mkdir(parents=True)
    (live / "webui.db").write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 40)
    (live / "uploads" / "report.pdf").write_bytes(b"%PDF" + b"x" * 5000)
    (live / "uploads" / "notes.txt").write_text("my notes\n")
    (live / "vector_db").mkdir()
    (live / "vector_db" / "chroma.sqlite3").write_bytes(b"chroma" * 100)
    (live / "current").symlink_to("webui.db")
    (live / "cache").mkdir()
    (live / "cache" / "model.bin").write_bytes(b"m" * 100)
    (live / "uploads").chmod(0o700)
    live.chmod(0o750)
    staging = tmp_path / "staging"
    (staging / "uploads").mkdir(parents=True)
    (staging / "webui.db").write_bytes(b"SQLite format 3\0" + b"backup" * 300)
    (staging / "uploads" / "old.txt").write_text("from the backup\n")
    (tmp_path / "rollback").mkdir()
    return tmp_path


def slot() -> Slot:
    return Slot("open-webui-data", "live", "staging", "rollback", KEEP)


def run(ops, services=None, bring_up=None, rep=None):
    s = slot()
    rep = rep or Reporter.quiet()
    swap([s], ops, services or FakeServices(), bring_up, rep, IMAGE)
    return s, rep


def fail(ops, services=None, bring_up=None):
    s, rep = slot(), Reporter.quiet()
    with pytest.raises(SwapFailed) as err:
        swap([s], ops, services or FakeServices(), bring_up, rep, IMAGE)
    return s, err.value, rep.console.file.getvalue()


def test_success_replaces_verifies_and_keeps_the_cache(box):
    before = tree(box / "live")
    staged = tree(box / "staging")
    services = FakeServices()
    ups = []
    s, _ = run(LocalOps(box), services, bring_up=lambda: ups.append(1))
    after = tree(box / "live")
    assert {k: v for k, v in after.items() if not k.startswith("cache")} == staged
    assert after["cache/model.bin"] == before["cache/model.bin"]
    assert tree(box / "rollback") == {k: v for k, v in before.items() if not k.startswith("cache")}
    assert s.copied and s.written and ups == [1] and services.events == ["stop"]


def test_the_live_data_is_written_only_after_its_copy_is_verified(box):
    ops = LocalOps(box)
    run(ops)
    calls = [c[:3] for c in ops.calls]
    first_write = calls.index(("replace", "staging", "live"))
    assert calls[:first_write] == [("fingerprint", "staging"), ("fingerprint", "live"),
                                   ("copy", "live", "rollback"), ("fingerprint", "rollback")]


@pytest.mark.parametrize("exc", [
    StackError("exit 1: cp: error writing '/to/webui.db': No space left on device"),
    StackError("its container was killed (exit 137)"),
    None,  # the copy stopped half-way and said nothing: the verification catches it
    KeyboardInterrupt(),
], ids=["disk-full", "killed", "silent", "ctrl-c"])
def test_a_failed_rollback_copy_leaves_the_live_data_untouched_and_says_so(box, exc):
    """The issue's reproduction: the rollback copy fills the disk half-way. Before the
    fix the live data was wiped and the partial copy put back ("put back unchanged")."""
    before = tree(box / "live")
    ops = Faulty(box, "rollback", exc)
    s, err, _ = fail(ops)
    assert tree(box / "live") == before
    assert not s.written and not s.copied
    assert not any(c[0] == "replace" for c in ops.calls)  # the live data was never written
    assert not err.keep  # live verified as it was: the partial copy may go
    assert "nothing was changed: the live data was verified as it was: live 4 files" in str(err)
    assert "put back" not in str(err)
    if exc is None:
        assert "the copy in rollback does not match live" in str(err)
    elif isinstance(exc, KeyboardInterrupt):
        assert str(err).startswith("interrupted (Ctrl-C) while copying live to the rollback volume rollback")
        assert err.exit_code == 130
    else:
        assert str(exc) in str(err)


@pytest.mark.parametrize("exc", [
    StackError("exit 1: cp: error writing '/to/uploads/old.txt': No space left on device"),
    StackError("its container was killed (exit 137)"),
    None,
    KeyboardInterrupt(),
], ids=["disk-full", "killed", "silent", "ctrl-c"])
def test_a_failed_replace_is_put_back_and_verified(box, exc):
    before = tree(box / "live")
    ops = Faulty(box, "live", exc)
    s, err, out = fail(ops)
    assert tree(box / "live") == before
    assert s.written and s.copied and not err.keep
    assert ("the previous data was put back and verified identical to before: live 4 files"
            in str(err))
    assert "putting the previous data back into live from rollback" in out
    assert err.exit_code == (130 if isinstance(exc, KeyboardInterrupt) else 1)


@pytest.mark.parametrize(("exc", "said"), [
    (httpx.ConnectError("connection refused"), "ConnectError: connection refused"),
    (docker.errors.APIError("500 Server Error: boom"), "APIError: 500 Server Error: boom"),
    (StackError("open-webui not healthy after 300s"), "open-webui not healthy after 300s"),
    (KeyboardInterrupt(), "interrupted (Ctrl-C)"),
], ids=["httpx", "docker", "stack", "ctrl-c"])
def test_any_failure_bringing_the_stack_up_puts_the_data_back(box, exc, said):
    before = tree(box / "live")
    services = FakeServices()

    def bring_up():
        (box / "live" / "webui.db").write_bytes(b"migrated by the new start")  # the app wrote to it
        raise exc

    _, err, _ = fail(LocalOps(box), services, bring_up)
    assert tree(box / "live") == before
    assert said in str(err) and "bringing the stack up with the restored data" in str(err)
    assert "put back and verified identical to before" in str(err)
    assert services.events == ["stop", "stop", "start_again"]  # stopped again before putting back


def test_when_putting_back_fails_too_every_copy_is_kept_and_the_message_says_where(box):
    before = tree(box / "live")

    class PutBackFails(Faulty):
        def copy(self, src, dst, keep, *, replace, label, total):
            if src == "rollback":
                raise StackError("exit 1: cp: error writing '/to/webui.db': No space left on device")
            return super().copy(src, dst, keep, replace=replace, label=label, total=total)

    _, err, _ = fail(PutBackFails(box, "live", StackError("disk full")))
    msg = str(err)
    assert err.keep  # the restore must not delete the only good copy
    assert tree(box / "rollback") == {k: v for k, v in before.items() if not k.startswith("cache")}
    assert msg.startswith("replacing the data in live failed (disk full); putting the previous data "
                          "back FAILED — nothing was deleted.")
    assert "your previous data for live is in the Docker volume rollback (4 files" in msg
    assert "(kept: rollback, staging)" in msg
    assert "put back and verified" not in msg
    # The command the message gives puts the data back (run here on the folders).
    command = re.search(r"`(docker run [^`]+)`", msg)[1]
    script = shlex.split(command)[-1].replace("/from", str(box / "rollback")).replace("/to", str(box / "live"))
    subprocess.run(["sh", "-c", script], check=True)
    assert tree(box / "live") == {k: v for k, v in before.items() if not k.startswith("cache")} | {
        k: v for k, v in tree(box / "live").items() if k.startswith("cache")}
    assert tree(box / "live") == before


def test_a_put_back_that_does_not_verify_is_not_called_a_success(box):
    class PutBackSilentlyPartial(Faulty):
        def copy(self, src, dst, keep, *, replace, label, total):
            if src == "rollback":
                self.exc, self.nth, self.seen = None, 1, 0
            return super().copy(src, dst, keep, replace=replace, label=label, total=total)

    _, err, _ = fail(PutBackSilentlyPartial(box, "live", StackError("disk full")))
    assert err.keep
    assert "it does not match the copy taken before" in str(err)
    assert "verified identical" not in str(err) and "unchanged" not in str(err)


def test_ctrl_c_while_putting_back_is_held_off(box):
    """A second Ctrl-C while the data is put back must not stop it half-way."""
    before = tree(box / "live")

    class InterruptedTwice(Faulty):
        def copy(self, src, dst, keep, *, replace, label, total):
            if src == "rollback":
                os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C again
            return super().copy(src, dst, keep, replace=replace, label=label, total=total)

    _, err, out = fail(InterruptedTwice(box, "live", KeyboardInterrupt()))
    assert tree(box / "live") == before and not err.keep
    assert "still putting the data back" in out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_services_that_cannot_be_stopped_leave_everything_untouched(box):
    before = tree(box / "live")
    ops = LocalOps(box)
    _, err, _ = fail(ops, FakeServices(stop_error=StackError("`compose stop open-webui` failed (exit 1)")))
    assert tree(box / "live") == before and not err.keep
    assert str(err) == ("stopping the services that use the data failed (`compose stop open-webui` failed "
                        "(exit 1)) — nothing was changed: the live data was not touched; the backup was "
                        "not restored")
    assert [c[0] for c in ops.calls] == ["fingerprint", "stop_strays"]
