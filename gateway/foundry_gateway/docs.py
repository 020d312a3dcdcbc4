"""Generates the README's metric reference from ``metrics.METRICS``.

    python -m foundry_gateway.docs gateway/README.md          # rewrite the section
    python -m foundry_gateway.docs gateway/README.md --check  # exit 1 on drift

The section lives between BEGIN/END markers; a unit test fails when it drifts.
"""

from __future__ import annotations

import sys

from foundry_exporter.docs import codes, markers, section
from foundry_exporter.docs import main as _main
from foundry_exporter.docs import rewrite as _rewrite

from .metrics import DURATION_BUCKETS, INTER_TOKEN_BUCKETS, METRICS, ROUTES, UPSTREAM_ERROR_REASONS

MODULE = "foundry_gateway.docs"
BEGIN, END = markers(MODULE)


def metrics_section() -> str:
    return section(BEGIN, END, METRICS, [
        f"- `route` label values: {codes(ROUTES)}.",
        f"- `reason` label values (closed set): {codes(UPSTREAM_ERROR_REASONS)}.",
        "- `model`: a model the upstream served or lists, `none` when the request named "
        "none, `other` past 64 distinct values or for unknown ones; `user`: see `per_user`.",
        f"- Duration and TTFT buckets (seconds): {', '.join(f'{b:g}' for b in DURATION_BUCKETS)}.",
        f"- Inter-token buckets (seconds): {', '.join(f'{b:g}' for b in INTER_TOKEN_BUCKETS)}.",
        "- Plus the standard `process_*` metrics of the gateway process.",
    ])


def rewrite(text: str) -> str:
    return _rewrite(text, metrics_section, BEGIN, END)


def main(argv: list[str]) -> int:
    return _main(argv, metrics_section, BEGIN, END, MODULE)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
