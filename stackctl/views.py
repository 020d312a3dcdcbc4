"""Terminal renderings of library results (rich tables and lines). No I/O besides
building renderables; tasks.py prints them."""

from __future__ import annotations

from rich.table import Table

from stackctl.checks.doctor import Finding
from stackctl.lifecycle.ops import StatusReport

_MARK = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "error": "[red]✗[/]"}


def status_table(rep: StatusReport) -> Table:
    t = Table(title=f"stack {rep.stack.project}", title_justify="left")
    for col in ("service", "state", "health", "restarts", "url"):
        t.add_column(col)
    url_for = {"open-webui": "Open WebUI", "prometheus": "Prometheus", "exporter": "Exporter",
               "grafana": "Grafana"}
    for svc in rep.stack.services:
        s = rep.services.get(svc)
        url = rep.urls.get(url_for[svc], "")
        if s is None:
            t.add_row(svc, "[red]absent[/]", "", "", url)
        else:
            color = "green" if s.ok else "red"
            t.add_row(svc, f"[{color}]{s.state}[/]", s.health, str(s.restarts), url)
    if rep.foundry:
        f = rep.foundry
        t.add_row("foundry (host)", "[green]serving[/]", f.generation, "",
                  f"{f.root_url}  models: {', '.join(f.chat_models) or 'none loaded'}")
    else:
        t.add_row("foundry (host)", "[red]not found[/]", "", "", rep.foundry_reason or "")
    return t


def doctor_lines(findings: list[Finding]) -> list[str]:
    out = []
    for f in findings:
        line = f"{_MARK[f.severity]} [bold]{f.check}[/]: {f.message}"
        if f.fix:
            line += f"\n    [dim]fix:[/] {f.fix}"
        out.append(line)
    errors = sum(f.severity == "error" for f in findings)
    warns = sum(f.severity == "warn" for f in findings)
    out.append(f"\n{errors} error(s), {warns} warning(s)")
    return out
