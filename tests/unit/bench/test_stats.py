"""Bench statistics against values computed by hand."""

from __future__ import annotations

import pytest

from stackctl.bench.stats import Sample, mean, overhead_ratio, percentile, summarize


def test_percentile_interpolates_between_closest_ranks():
    xs = [4.0, 1.0, 3.0, 2.0]            # sorted: 1 2 3 4
    assert percentile(xs, 0) == 1.0
    assert percentile(xs, 50) == 2.5     # rank 1.5
    assert percentile(xs, 95) == pytest.approx(3.85)  # rank 2.85 → 3 + 0.85·(4−3)
    assert percentile(xs, 100) == 4.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_percentile_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"not within 0\.\.100"):
        percentile([1.0], 101)


def test_mean():
    assert mean([1.0, 2.0, 6.0]) == 3.0
    assert mean([]) is None


def _s(lat, ttft, tok, error=None, r=1):
    return Sample("m", "direct", "p", r, lat, ttft, tok, error)


def test_summarize_by_hand():
    samples = [_s(1.0, 0.5, 10), _s(2.0, 0.5, 20), _s(4.0, 1.0, 30), _s(None, None, None, "HTTP 500: boom")]
    st = summarize("m", "direct", samples)
    assert (st.requests, st.errors, st.first_error) == (4, 1, "HTTP 500: boom")
    assert st.latency_mean == pytest.approx(7 / 3)
    assert st.latency_p50 == 2.0
    assert st.latency_p95 == pytest.approx(3.8)        # sorted 1 2 4, rank 1.9 → 2 + 0.9·2
    assert st.ttft_mean == pytest.approx(2 / 3)
    assert st.ttft_p95 == pytest.approx(0.95)          # sorted .5 .5 1, rank 1.9 → .5 + .9·.5
    assert st.tokens_per_s == pytest.approx(60 / 7)    # 60 tokens over 7 s of latency
    assert st.decode_tokens_per_s == pytest.approx(12.0)  # 60 tokens over (0.5 + 1.5 + 3.0) s


def test_summarize_all_failed_has_no_timings():
    st = summarize("m", "direct", [_s(None, None, None, "x")])
    assert st.latency_mean is st.latency_p95 is st.ttft_mean is st.tokens_per_s is None
    assert st.errors == st.requests == 1


def test_overhead_ratio():
    d = summarize("m", "direct", [_s(1.0, 0.1, 5), _s(3.0, 0.1, 5)])       # mean 2.0
    p = summarize("m", "openwebui", [_s(2.5, 0.2, 5), _s(2.5, 0.2, 5)])    # mean 2.5
    assert overhead_ratio(d, p) == pytest.approx(1.25)
    assert overhead_ratio(d, None) is None
    assert overhead_ratio(summarize("m", "direct", [_s(None, None, None, "x")]), p) is None
