"""exporter/README.md's metric reference is regenerated from metrics.METRICS and compared
with the committed file; the drift check is shown failing on mutated copies."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from foundry_exporter.docs import BEGIN, END, main, metrics_section
from foundry_exporter.metrics import all_series_names
from tests.plugins.common import REPO

README = REPO / "exporter" / "README.md"


def _committed_section(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END)
    return text[start:end + len(END)]


def test_committed_section_is_what_the_declarations_generate() -> None:
    committed = _committed_section(README.read_text(encoding="utf-8"))
    assert committed == metrics_section(), "run: python -m foundry_exporter.docs exporter/README.md"


def test_committed_rows_name_exactly_the_declared_series() -> None:
    """Read back from the committed table, not from the generator's output."""
    rows = [ln for ln in _committed_section(README.read_text(encoding="utf-8")).splitlines()
            if ln.startswith("| `")]
    named = {n for row in rows for n in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert named == all_series_names()


@pytest.mark.parametrize(("old", "new"), [
    ("| `foundry_up` | gauge |", "| `foundry_up` | counter |"),          # a type edited by hand
    ("`foundry_probes_total`", "`foundry_probe_total`"),                  # a renamed series
    ("| `foundry_exporter_targets` | gauge | – | Targets in the loaded config. |\n", ""),  # a lost row
    ("`no_chat_model`.", "`no_chat_model`, `other`."),                   # an invented reason
])
def test_check_fails_on_a_mutated_copy_and_regenerating_repairs_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str) -> None:
    copy = tmp_path / "README.md"
    shutil.copyfile(README, copy)
    assert main([str(copy), "--check"]) == 0
    text = copy.read_text(encoding="utf-8")
    assert old in text
    copy.write_text(text.replace(old, new, 1), encoding="utf-8")
    assert main([str(copy), "--check"]) == 1
    assert capsys.readouterr().out == (f"{copy}: metrics section is stale; "
                                       f"run python -m foundry_exporter.docs {copy}\n")
    assert main([str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")
