"""Bench outputs render from the same rows; the Markdown and CSV say the same numbers."""

from __future__ import annotations

from stackctl.bench.report import overheads, to_csv, to_markdown
from stackctl.bench.run import summary
from stackctl.bench.stats import Sample, summarize

META = {"created_at": "2026-01-01T00:00:00Z", "base_url": "http://x/v1", "prompts": "p.yaml",
        "prompt_count": 1, "rounds": 2}


def stats():
    ok = [Sample("m:1", "direct", "p", 1, 1.0, 0.25, 10), Sample("m:1", "direct", "p", 2, 3.0, 0.75, 30)]
    ui = [Sample("m:1", "openwebui", "p", 1, 2.5, 0.5, 10), Sample("m:1", "openwebui", "p", 2, 2.5, 0.5, 10)]
    bad = [Sample("gone:1", "direct", "warm-up", 0, error="HTTP 400: Model not loaded")]
    return [summarize("m:1", "direct", ok), summarize("m:1", "openwebui", ui), summarize("gone:1", "direct", bad)]


def test_markdown_table_overhead_and_errors():
    md = to_markdown(META, stats())
    assert "| m:1 | direct | 2 | 0 | 2000 | 2000 | 2900 | 500 | 725 | 10.0 | 13.3 |" in md
    assert "- m:1: 1.25×" in md
    assert "- gone:1 (direct): 1 of 1 failed — HTTP 400: Model not loaded" in md


def test_csv_rows():
    lines = to_csv(stats()).splitlines()
    assert lines[0].startswith("model,via,requests,errors,latency_mean")
    assert lines[1].startswith("m:1,direct,2,0,2.0000,2.0000,2.9000,0.5000,0.7250,10.0000,13.3333,")
    assert lines[3] == "gone:1,direct,1,1,,,,,,,,HTTP 400: Model not loaded"


def test_overheads_and_terminal_summary():
    assert overheads(stats()) == {"m:1": 1.25}
    lines = summary(stats())
    assert lines[0] == "✓ m:1 (direct): latency mean 2000 ms, p95 2900 ms, TTFT mean 500 ms, 10.0 tokens/s, 0 errors of 2"
    assert lines[2] == "✗ gone:1 (direct): failed — HTTP 400: Model not loaded"
    assert lines[-1] == "  Open WebUI overhead for m:1: 1.25×"
