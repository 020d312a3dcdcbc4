"""`invoke bench` against the real Foundry Local runtime serving the tiny model."""

from __future__ import annotations

import csv
import json

import pytest

from stackctl.bench.run import BenchOptions, run_bench
from stackctl.console import Reporter


@pytest.fixture(scope="module")
def bench_run(foundry_server, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    res = run_bench(BenchOptions(models=f"{foundry_server.model_id},no-such-model:1", rounds=2,
                                 base_url=foundry_server.chat_base_url, out_dir=out),
                    Reporter.quiet())
    return res, out


def test_all_four_outputs_are_written(bench_run):
    res, out = bench_run
    assert set(res.outputs) == {"json", "csv", "markdown", "chart"}
    for p in res.outputs.values():
        assert p.parent == out and p.stat().st_size > 0


def test_the_tiny_model_is_measured_and_the_missing_one_reported_not_fatal(bench_run, foundry_server):
    res, _ = bench_run
    by = {s.model: s for s in res.stats}
    tiny = by[foundry_server.model_id]
    assert tiny.errors == 0 and tiny.requests == 2 * 4  # 2 rounds × the 4 default prompts
    assert 0 < tiny.ttft_mean <= tiny.latency_mean <= tiny.latency_p95
    assert tiny.latency_p50 <= tiny.latency_p95 and tiny.tokens_per_s > 0
    missing = by["no-such-model:1"]
    assert missing.latency_mean is None and missing.errors == missing.requests == 1
    assert missing.first_error.startswith("HTTP ")
    assert not res.all_failed


def test_json_csv_and_markdown_agree(bench_run, foundry_server):
    res, _ = bench_run
    doc = json.loads(res.outputs["json"].read_text())
    assert doc["rounds"] == 2 and doc["temperature"] == 0
    assert [r["model"] for r in doc["results"]] == [foundry_server.model_id, "no-such-model:1"]
    assert len([s for s in doc["samples"] if s["model"] == foundry_server.model_id]) == 8
    rows = list(csv.DictReader(res.outputs["csv"].open()))
    assert rows[0]["model"] == foundry_server.model_id and rows[0]["errors"] == "0"
    assert float(rows[0]["latency_mean"]) == pytest.approx(doc["results"][0]["latency_mean"], abs=1e-4)
    md = res.outputs["markdown"].read_text()
    assert f"| {foundry_server.model_id} | direct | 8 | 0 |" in md
    assert "no-such-model:1 (direct): 1 of 1 failed" in md


def test_the_png_is_a_real_chart(bench_run):
    import matplotlib.image as mpimg
    import numpy as np

    res, _ = bench_run
    img = mpimg.imread(res.outputs["chart"])
    h, w = img.shape[:2]
    assert w >= 600 and h >= 300
    colours = np.unique(img.reshape(-1, img.shape[2]), axis=0)
    assert len(colours) > 10  # bars, text, axes — not a blank canvas
