"""The exporter image runs as a fixed non-root uid and needs nothing writable (issue 13, item 12)."""

from __future__ import annotations

from tests.plugins.common import REPO

DOCKERFILE = REPO / "exporter" / "Dockerfile"
UID = "10001"  # also used by tests/integration/exporter/test_exporter_nonroot.py


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1].strip())
            for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_the_image_runs_as_a_fixed_non_root_uid() -> None:
    steps = _instructions()
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] == UID, "the last USER must be the numeric uid " + UID
    last_user = max(i for i, (op, _) in enumerate(steps) if op == "USER")
    # Nothing after USER may need root, and the entrypoint runs as that user.
    assert [op for op, _ in steps[last_user:]] == ["USER", "EXPOSE", "ENTRYPOINT", "CMD"]


def test_the_image_declares_nothing_writable() -> None:
    ops = {op for op, _ in _instructions()}
    assert "VOLUME" not in ops  # no state: config is mounted read-only, results live in memory
    env = " ".join(arg for op, arg in _instructions() if op == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # no __pycache__ writes at run time
