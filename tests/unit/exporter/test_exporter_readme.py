"""exporter/README.md's metric reference is generated from metrics.py and must not drift."""

from __future__ import annotations

from foundry_exporter.docs import metrics_section, rewrite
from foundry_exporter.metrics import METRICS
from tests.plugins.common import REPO

README = REPO / "exporter" / "README.md"


def test_readme_metrics_section_matches_the_catalog() -> None:
    text = README.read_text(encoding="utf-8")
    assert rewrite(text) == text, "run: python -m foundry_exporter.docs exporter/README.md"


def test_section_names_every_series() -> None:
    section = metrics_section()
    for metric in METRICS:
        for name in metric.series_names:
            assert f"`{name}`" in section
