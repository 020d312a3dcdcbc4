"""`invoke bench`: the same prompts against several models, measured the same way.

Per model (and per path: direct to Foundry Local, optionally through Open WebUI's
API): one warm-up round (not counted: it absorbs model load and caches), then N
measured rounds of every prompt, one request at a time. A model whose warm-up
fails entirely is reported with that error and skipped — never fatal for the
others. Statistics are pure (bench_stats); outputs render from the same rows
(bench_report); HTTP is one function (bench_client.measure).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stackctl import __version__
from stackctl.bench import report as bench_report
from stackctl.bench.client import Target, measure
from stackctl.bench.config import PromptSet, load_prompts, resolve_models
from stackctl.bench.stats import Sample, Stats, summarize
from stackctl.config.settings import OPENWEBUI
from stackctl.config.stack import Stack, load_stack
from stackctl.console import Reporter, cmd
from stackctl.errors import StackError, UsageError


@dataclass(frozen=True)
class BenchOptions:
    models: str | None = None
    models_file: Path | None = None
    prompts_file: Path | None = None
    rounds: int = 3
    through_openwebui: bool = False
    out_dir: Path | None = None
    base_url: str | None = None   # OpenAI base URL; default: the discovered Foundry Local
    timeout: float = 120.0


@dataclass
class BenchResult:
    stats: list[Stats]
    samples: list[Sample]
    outputs: dict[str, Path] = field(default_factory=dict)
    summary_lines: list[str] = field(default_factory=list)

    @property
    def all_failed(self) -> bool:
        return all(s.errors == s.requests for s in self.stats)


def run_bench(opts: BenchOptions, reporter: Reporter | None = None, *, stack: Stack | None = None,
              http: httpx.Client | None = None, clock: Callable[[], float] = time.perf_counter,
              now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> BenchResult:
    r = reporter or Reporter.quiet()
    if opts.rounds < 1:
        raise UsageError(f"--rounds must be at least 1, got {opts.rounds}")
    prompts = load_prompts(opts.prompts_file)
    models = resolve_models(opts.models, opts.models_file)
    if opts.base_url and not models:
        raise UsageError("--base-url needs --models or --models-file (which models to measure there)")
    if stack is None and not (opts.base_url and not opts.through_openwebui):
        stack = load_stack()
    base_url, found = _endpoint(opts, stack)
    models = models or found
    if not models:
        raise StackError("Foundry Local has no chat model loaded — load one (`foundry model load ALIAS`) "
                         "or name models with --models", exit_code=2)
    http = http or httpx.Client()
    targets = [Target("direct", base_url.rstrip("/") + "/chat/completions", {})]
    if opts.through_openwebui:
        targets.append(_openwebui_target(stack))

    samples: list[Sample] = []
    stats: list[Stats] = []
    total = len(models) * len(targets) * len(prompts.prompts) * (opts.rounds + 1)
    with _progress(r) as progress:
        task = progress.add_task("bench", total=total)
        for model in models:
            for target in targets:
                progress.update(task, description=f"{model} ({target.via})")
                got = _one(http, target, model, prompts, opts, clock, lambda: progress.advance(task))
                samples += got
                stats.append(summarize(model, target.via, got))
    created = now()
    meta = {"created_at": created.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "stack_version": __version__, "base_url": base_url, "prompts": prompts.source,
            "prompt_count": len(prompts.prompts), "rounds": opts.rounds, "models": list(models),
            "through_openwebui": opts.through_openwebui, "temperature": 0}
    out = opts.out_dir or ((stack.root if stack else Path.cwd()) / "bench-results"
                           / created.strftime("%Y%m%dT%H%M%SZ"))
    res = BenchResult(stats, samples)
    res.outputs = write_outputs(out, meta, stats, samples)
    res.summary_lines = summary(stats)
    return res


def _one(http, target: Target, model: str, prompts: PromptSet, opts: BenchOptions,
         clock, advance: Callable[[], None]) -> list[Sample]:
    """Warm-up, then the measured rounds; a model failing its whole warm-up → one failed sample."""
    warm = []
    for p in prompts.prompts:
        warm.append(measure(http, target, model, p.id, p.text, p.max_tokens, 0,
                            timeout=opts.timeout, clock=clock))
        advance()
    if all(not s.ok for s in warm):  # the model does not answer at all: report, move on
        for _ in range(len(prompts.prompts) * opts.rounds):
            advance()
        return [Sample(model, target.via, "warm-up", 0, error=warm[0].error)]
    out = []
    for n in range(1, opts.rounds + 1):
        for p in prompts.prompts:
            out.append(measure(http, target, model, p.id, p.text, p.max_tokens, n,
                               timeout=opts.timeout, clock=clock))
            advance()
    return out


def write_outputs(out: Path, meta: dict, stats: list[Stats], samples: list[Sample]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "csv": out / "bench.csv",
             "markdown": out / "bench.md", "chart": out / "bench.png"}
    paths["json"].write_text(bench_report.to_json(meta, stats, samples))
    paths["csv"].write_text(bench_report.to_csv(stats))
    paths["markdown"].write_text(bench_report.to_markdown(meta, stats))
    bench_report.write_chart(stats, paths["chart"])
    return paths


def summary(stats: list[Stats]) -> list[str]:
    """One line per (model, path) for the terminal. Pure."""
    lines = []
    for s in stats:
        if s.latency_mean is None:
            lines.append(f"✗ {s.model} ({s.via}): failed — {s.first_error}")
            continue
        lines.append(f"{'!' if s.errors else '✓'} {s.model} ({s.via}): latency mean {s.latency_mean * 1000:.0f} ms, "
                     f"p95 {s.latency_p95 * 1000:.0f} ms, TTFT mean {(s.ttft_mean or 0) * 1000:.0f} ms, "
                     f"{s.tokens_per_s or 0:.1f} tokens/s, {s.errors} errors of {s.requests}")
    ratios = bench_report.overheads(stats)
    lines += [f"  Open WebUI overhead for {m}: {r:.2f}×" for m, r in ratios.items() if r is not None]
    return lines


def _endpoint(opts: BenchOptions, stack: Stack | None) -> tuple[str, tuple[str, ...]]:
    if opts.base_url:
        return opts.base_url, ()
    from stackctl.foundry.view import current

    assert stack is not None
    view, reason = current(stack)
    if view is None:
        raise StackError(f"Foundry Local not found ({reason}) — start it (`{cmd('foundry.serve')}` or "
                         f"`{cmd('up')}`), or set FOUNDRY_LOCAL_ENDPOINT", exit_code=2)
    return view.openai_url, view.chat_models


def _openwebui_target(stack: Stack | None) -> Target:
    from stackctl.openwebui import OpenWebUI, login

    assert stack is not None
    ui = OpenWebUI(stack.api_url(OPENWEBUI.port_key))
    if not ui.health():
        raise StackError(f"Open WebUI at {ui.base_url} is not answering — `{cmd('up')}`, or drop "
                         "--through-openwebui", exit_code=2)
    login(ui, stack.env["WEBUI_ADMIN_EMAIL"], stack.env["WEBUI_ADMIN_PASSWORD"], stack.state_dir)
    return Target("openwebui", ui.base_url + "/api/chat/completions", {"Authorization": f"Bearer {ui.token}"})


def _progress(r: Reporter) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=r.console, transient=True,
                    disable=not r.console.is_terminal)
