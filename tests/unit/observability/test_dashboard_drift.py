"""The committed dashboards equal a fresh build of grafana/generate.py.

UPDATE_GOLDENS=1 rewrites grafana/dashboards/ and then fails the run, so a
regenerated file is always looked at and committed on purpose.
"""

from __future__ import annotations

import difflib
import json
import os

import pytest

from grafana import generate


def test_committed_dashboards_match_a_fresh_build() -> None:
    fresh = generate.build_all()
    if os.environ.get("UPDATE_GOLDENS") == "1":
        changed = generate.write_all()
        pytest.fail(f"UPDATE_GOLDENS=1: rewrote {[p.name for p in changed]}; review and commit")
    committed = {p.name for p in generate.DASHBOARDS_DIR.glob("*.json")}
    assert committed == set(fresh), "dashboard files differ from the builders; run python grafana/generate.py"
    for name, text in fresh.items():
        old = (generate.DASHBOARDS_DIR / name).read_text()
        diff = "".join(difflib.unified_diff(old.splitlines(True), text.splitlines(True), name, "fresh", n=1))
        assert old == text, f"{name} drifted; run python grafana/generate.py\n{diff[:4000]}"


def test_build_is_deterministic() -> None:
    assert generate.build_all() == generate.build_all()


def test_each_file_is_named_after_its_uid() -> None:
    for name, text in generate.build_all().items():
        assert name == f"{json.loads(text)['uid']}.json"
