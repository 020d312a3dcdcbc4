"""Bench outputs: JSON, CSV, Markdown (pure renderers) and a PNG chart (matplotlib, Agg).

Every file renders from the same ``Stats`` rows, so the four outputs cannot disagree.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from stackctl.bench.stats import Sample, Stats, overhead_ratio

COLUMNS = ("model", "via", "requests", "errors", "latency_mean", "latency_p50", "latency_p95",
           "ttft_mean", "ttft_p95", "tokens_per_s", "decode_tokens_per_s", "first_error")


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def overheads(stats: Sequence[Stats]) -> dict[str, float | None]:
    """model → Open WebUI/direct mean-latency ratio, for models measured both ways. Pure."""
    by = {(s.model, s.via): s for s in stats}
    return {m: _r(overhead_ratio(by.get((m, "direct")), by.get((m, "openwebui"))), 3)
            for m in dict.fromkeys(s.model for s in stats) if (m, "openwebui") in by}


def to_json(meta: dict, stats: Sequence[Stats], samples: Sequence[Sample]) -> str:
    doc = {
        **meta,
        "results": [{k: (_r(v) if isinstance(v, float) else v) for k, v in asdict(s).items()} for s in stats],
        "openwebui_overhead_ratio": overheads(stats),
        "samples": [asdict(s) for s in samples],
    }
    return json.dumps(doc, indent=2) + "\n"


def to_csv(stats: Sequence[Stats]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for s in stats:
        row = asdict(s)
        w.writerow(["" if row[c] is None else (f"{row[c]:.4f}" if isinstance(row[c], float) else row[c])
                    for c in COLUMNS])
    return buf.getvalue()


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x * 1000:.0f}"


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def to_markdown(meta: dict, stats: Sequence[Stats]) -> str:
    lines = [
        "# Foundry Local benchmark",
        "",
        f"- when: {meta['created_at']}",
        f"- endpoint: {meta['base_url']}",
        f"- prompts: {meta['prompts']} ({meta['prompt_count']} prompts), "
        f"{meta['rounds']} measured round(s) after 1 warm-up, temperature 0, streaming",
        "",
        "| model | via | requests | errors | latency mean ms | p50 ms | p95 ms | TTFT mean ms | "
        "TTFT p95 ms | tokens/s | decode tokens/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in stats:
        lines.append(f"| {s.model} | {s.via} | {s.requests} | {s.errors} | {_ms(s.latency_mean)} | "
                     f"{_ms(s.latency_p50)} | {_ms(s.latency_p95)} | {_ms(s.ttft_mean)} | "
                     f"{_ms(s.ttft_p95)} | {_num(s.tokens_per_s)} | {_num(s.decode_tokens_per_s)} |")
    ratios = overheads(stats)
    if ratios:
        lines += ["", "Open WebUI proxy overhead (mean latency through Open WebUI ÷ direct):", ""]
        lines += [f"- {m}: {'—' if r is None else f'{r:.2f}×'}" for m, r in ratios.items()]
    failed = [s for s in stats if s.errors]
    if failed:
        lines += ["", "Errors:", ""]
        lines += [f"- {s.model} ({s.via}): {s.errors} of {s.requests} failed — {s.first_error}" for s in failed]
    lines += ["", "Latency: request → last streamed byte. TTFT: request → first content chunk. "
              "tokens/s: output tokens ÷ latency; decode tokens/s: ÷ (latency − TTFT).", ""]
    return "\n".join(lines)


def write_chart(stats: Sequence[Stats], path: Path, title: str = "Foundry Local benchmark") -> Path:
    """Two panels per (model, via): latency mean/p95 and TTFT mean (ms); output tokens/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{s.model}\n({s.via})" for s in stats]
    x = list(range(len(stats)))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(stats) + 4), 4.8), dpi=100)
    width = 0.27
    series = (("latency mean", [s.latency_mean for s in stats], "#4C72B0"),
              ("latency p95", [s.latency_p95 for s in stats], "#55A868"),
              ("TTFT mean", [s.ttft_mean for s in stats], "#C44E52"))
    for i, (name, vals, color) in enumerate(series):
        ax1.bar([xi + (i - 1) * width for xi in x], [(v or 0) * 1000 for v in vals], width,
                label=name, color=color)
    ax1.set_ylabel("milliseconds")
    ax1.set_title("Latency and time to first token")
    ax1.legend(fontsize=8)
    ax2.bar(x, [s.tokens_per_s or 0 for s in stats], 0.5, color="#8172B2", label="tokens/s")
    ax2.set_ylabel("output tokens / second")
    ax2.set_title("Throughput")
    for ax in (ax1, ax2):
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for xi, s in zip(x, stats, strict=True):
        if s.errors:
            ax2.annotate(f"{s.errors} error{'' if s.errors == 1 else 's'}", (xi, 0), ha="center", va="bottom", color="#C44E52", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
