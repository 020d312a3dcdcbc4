"""gateway/README.md's metric reference is generated from metrics.py and must not drift."""

from __future__ import annotations

from foundry_gateway.docs import main, metrics_section, rewrite
from foundry_gateway.metrics import METRICS, PREFIX
from tests.plugins.common import REPO

README = REPO / "gateway" / "README.md"


def test_readme_metrics_section_matches_the_catalog() -> None:
    text = README.read_text(encoding="utf-8")
    assert rewrite(text) == text, "run: python -m foundry_gateway.docs gateway/README.md"


def test_check_mode_fails_on_drift(tmp_path, capsys) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(README.read_text(encoding="utf-8").replace(f"`{PREFIX}_tokens_total`", "`x`"))
    assert main([str(stale), "--check"]) == 1
    assert "metrics section is stale" in capsys.readouterr().out


def test_section_names_every_series_with_the_gateway_prefix() -> None:
    section = metrics_section()
    for metric in METRICS:
        assert metric.name.startswith(f"{PREFIX}_")
        for name in metric.series_names:
            assert f"`{name}`" in section
