"""The committed dashboards equal a fresh build of grafana/generate.py.

Every check here reads the committed files in grafana/dashboards/ (never a
second build of the same process), and the drift check is shown failing on a
mutated copy, so a check that cannot fail would be noticed.

UPDATE_GOLDENS=1 rewrites grafana/dashboards/ and then fails the run, so a
regenerated file is always looked at and committed on purpose.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grafana import generate

REPO = Path(__file__).resolve().parents[3]


def drift(fresh: dict[str, str], directory: Path) -> list[str]:
    """One line per difference between a build (name -> text) and ``directory``'s *.json."""
    committed = {p.name: p.read_text() for p in sorted(directory.glob("*.json"))}
    problems = [f"{n}: missing from {directory}" for n in sorted(set(fresh) - set(committed))]
    problems += [f"{n}: in {directory} but no builder makes it" for n in sorted(set(committed) - set(fresh))]
    for name in sorted(set(fresh) & set(committed)):
        if fresh[name] != committed[name]:
            diff = "".join(difflib.unified_diff(committed[name].splitlines(True),
                                                fresh[name].splitlines(True), name, "fresh", n=1))
            problems.append(f"{name}: drifted\n{diff[:4000]}")
    return problems


def test_committed_dashboards_match_a_fresh_build() -> None:
    if os.environ.get("UPDATE_GOLDENS") == "1":
        changed = generate.write_all()
        pytest.fail(f"UPDATE_GOLDENS=1: rewrote {[p.name for p in changed]}; review and commit")
    problems = drift(generate.build_all(), generate.DASHBOARDS_DIR)
    assert not problems, "run python grafana/generate.py and commit:\n" + "\n".join(problems)


def test_drift_check_fails_on_a_mutated_copy(tmp_path: Path) -> None:
    fresh = generate.build_all()
    copy = tmp_path / "dashboards"
    shutil.copytree(generate.DASHBOARDS_DIR, copy)
    assert drift(fresh, copy) == []
    first, *_ = sorted(copy.glob("*.json"))
    doc = json.loads(first.read_text())
    doc["panels"][0]["title"] += " (edited by hand)"
    first.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (copy / "stray.json").write_text("{}\n")
    last = sorted(copy.glob("*.json"))[-2]
    last.unlink()
    problems = drift(fresh, copy)
    assert [p.split("\n")[0] for p in problems] == [
        f"{last.name}: missing from {copy}",
        f"stray.json: in {copy} but no builder makes it",
        f"{first.name}: drifted",
    ]
    assert "(edited by hand)" in problems[2]


def test_a_build_in_a_fresh_interpreter_matches_the_committed_files(tmp_path: Path) -> None:
    """Determinism across processes (hash seeds differ), checked against the files on disk."""
    out = tmp_path / "dashboards"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    code = "import sys; from pathlib import Path; from grafana import generate; generate.write_all(Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(out)], cwd=REPO, env=env, check=True, timeout=120)
    built = {p.name: p.read_text() for p in out.glob("*.json")}
    assert drift(built, generate.DASHBOARDS_DIR) == []


def test_each_committed_file_is_named_after_its_uid() -> None:
    files = sorted(generate.DASHBOARDS_DIR.glob("*.json"))
    assert files
    for path in files:
        assert path.name == f"{json.loads(path.read_text())['uid']}.json"
