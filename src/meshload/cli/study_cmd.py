"""`meshload study`: what each traffic-control function costs, measured on the local testbed.

Runs every function of a study plan (the built-in default, `--quick`, or a file) at every load level,
several times, interleaved; compares each function with its baseline; writes each cell's run folder,
`study.json` and `index.html`, and prints a summary table and where `index.html` is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .. import terminal
from ..errors import UsageError
from .history_hook import HistoryOption, StoreOption, record_study
from .k8s_options import ResultsTtlOption, results_ttl_s
from .options import option

if TYPE_CHECKING:  # imported lazily at run time, so `meshload --help` stays fast
    from rich.table import Table

    from ..coordinator.study import StudyProgress
    from ..results.compare import CellSummary, Comparison
    from ..results.study_result import StudyResult
    from ..scenarios.study_plan import StudyCell

DEFAULT_STUDIES_DIR = Path("studies")
#: Columns of the summary table (metric key, heading); index.html has every metric.
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("p50_ms", "Δp50 ms"),
    ("p99_ms", "Δp99 ms"),
    ("p99.9_ms", "Δp99.9 ms"),
    ("error_rate_pct", "Δerrors %"),
    ("proxy_cpu_mcores_per_krps", "Δproxy CPU mcores/krps"),
)


def study(
    plan_file: Annotated[
        Path | None,
        typer.Argument(
            help="Study plan (YAML/JSON) or built-in study name; default: the built-in study-default.",
            show_default=False,
        ),
    ] = None,
    quick: Annotated[
        bool, option("--quick", env="STUDY_QUICK", help="Run the small built-in study (under 3 minutes).")
    ] = False,
    out: Annotated[
        Path | None,
        option("--out", "-o", env="STUDY_OUT", help="Output folder (default: a new folder under studies/)."),
    ] = None,
    repetitions: Annotated[
        int | None, option("--repetitions", "-n", env="STUDY_REPETITIONS", help="Override the plan's repetitions.")
    ] = None,
    duration: Annotated[
        str | None,
        option("--duration", "-d", env="STUDY_DURATION", help="Override the measured time per cell, e.g. 10s."),
    ] = None,
    warmup: Annotated[
        str | None, option("--warmup", env="STUDY_WARMUP", help="Override the warm-up per cell, e.g. 2s.")
    ] = None,
    load_levels: Annotated[
        str | None,
        option(
            "--load-levels",
            env="STUDY_LOAD_LEVELS",
            help="Override the load levels: rates in requests per second, e.g. 25,50,100.",
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        option(
            "--redis",
            env="REDIS",
            help="Redis URL (shared with `meshload run` and workers); default: a private redis-server for the study.",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        option(
            "--json", env="STUDY_JSON", help="At the end, print the comparisons as JSON on stdout instead of the table."
        ),
    ] = False,
    results_ttl: ResultsTtlOption = None,
    store: StoreOption = None,
    history: HistoryOption = True,
) -> None:
    """Measure what each traffic-control function costs against its baseline, with 95% intervals."""
    from ..coordinator.study import StudyOptions, estimated_duration_s, run_study
    from ..scenarios.durations import format_duration
    from ..scenarios.study_plan import DEFAULT_STUDY, QUICK_STUDY, load_study_plan

    if quick and plan_file is not None:
        raise UsageError("give a study plan or --quick, not both (--quick is the built-in study-quick)")
    ttl_s = results_ttl_s(results_ttl)
    source = plan_file if plan_file is not None else Path(QUICK_STUDY if quick else DEFAULT_STUDY)
    plan = load_study_plan(source, _overrides(repetitions, duration, warmup, load_levels))
    out_dir = (
        out if out is not None else DEFAULT_STUDIES_DIR / f"{plan.name}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    )

    estimate_s = estimated_duration_s(plan, private_redis=redis_url is None)
    finish = time.strftime("%H:%M UTC", time.gmtime(time.time() + estimate_s))
    terminal.info(
        f"study {plan.name}: {len(plan.functions)} functions x {len(plan.load_levels)} load levels "
        f"({', '.join(f'{r:g}' for r in plan.load_levels)} rps) x {plan.repetitions} repetitions = "
        f"{len(plan.cells())} cells of {plan.warmup_s:g}s warm-up + {plan.duration_s:g}s measured"
    )
    terminal.info(
        f"estimated duration {format_duration(round(estimate_s))} (until about {finish}); results in {out_dir}"
    )

    def on_cell_start(cell: StudyCell, progress: StudyProgress) -> None:
        terminal.info(
            f"[{progress.done + 1}/{progress.total}] {cell.function.label} at {cell.rate:g} rps, "
            f"repetition {cell.repetition}"
        )

    def on_cell(summary: CellSummary, progress: StudyProgress) -> None:
        metrics = summary.metrics
        left = f"about {format_duration(round(progress.remaining_s))} left"
        if metrics.get("p50_ms") is None:
            terminal.warning(f"cell failed: {'; '.join(summary.validity)}; {left}")
            return
        line = f"    p50 {metrics['p50_ms']:.2f} ms, p99 {metrics['p99_ms']:.2f} ms, {summary.actual_rps:.1f} rps"
        if metrics.get("error_rate_pct"):
            line += f", {metrics['error_rate_pct']:.1f}% errors"
        terminal.info(f"{line}; {left}")
        if not summary.valid:
            terminal.warning(
                f"cell invalid ({'; '.join(summary.validity)}): used only if fewer than 2 cells of its "
                "function and load level are valid"
            )

    options = StudyOptions(
        out_dir=out_dir,
        redis_url=redis_url,
        on_cell=on_cell,
        on_cell_start=on_cell_start,
        results_ttl_s=ttl_s,
    )
    try:
        result = run_study(plan, options)
    except KeyboardInterrupt:
        terminal.warning(f"study interrupted; the cells that finished are in {out_dir / 'study.json'}")
        raise
    elapsed_s = (result.ended_unix_ms - result.started_unix_ms) / 1000.0
    terminal.info(
        f"study finished in {format_duration(round(elapsed_s))} (estimated {format_duration(round(estimate_s))})"
    )
    index_path = (out_dir / "index.html").resolve()
    record_study(result, out_dir, store=store, enabled=history)
    if as_json:
        from ..results.study_json import study_document

        comparisons = study_document(result)["comparisons"]
        terminal.result(json.dumps({"index_html": str(index_path), "comparisons": comparisons}, indent=1))
        terminal.info(f"index.html: {index_path}")
        return
    print_study_summary(result)
    terminal.result(f"index.html: {index_path}")


def _overrides(
    repetitions: int | None, duration: str | None, warmup: str | None, load_levels: str | None
) -> dict[str, object]:
    overrides: dict[str, object] = {}
    if repetitions is not None:
        overrides["repetitions"] = repetitions
    if duration is not None:
        overrides["duration"] = duration
    if warmup is not None:
        overrides["warmup"] = warmup
    if load_levels is not None:
        try:
            overrides["load_levels"] = [float(part) for part in load_levels.split(",") if part.strip()]
        except ValueError:
            raise UsageError(f"--load-levels: {load_levels!r} is not a list of rates; use e.g. 25,50,100") from None
    return overrides


def print_study_summary(result: StudyResult) -> None:
    """The comparisons as a table on stdout, then the note on intervals and any invalid cells."""
    from ..results.compare import interval_note

    comparisons = result.comparisons()
    terminal.table(comparison_table(comparisons, title=f"study {result.plan.name}: change against the baseline"))
    terminal.info(f"* interval excludes 0. {interval_note(result.plan.repetitions)}")
    if any(c.uses_invalid_cells for c in comparisons):
        terminal.warning("! marks a change that includes invalid cells (fewer than 2 valid repetitions in an arm)")
    invalid = [cell for cell in result.cells if not cell.valid]
    if invalid:
        terminal.warning(
            f"{len(invalid)} of {len(result.cells)} cells invalid: each is used only where fewer than 2 cells "
            "of its function and load level were valid (see index.html)"
        )
    if not result.complete:
        terminal.warning(f"the study is incomplete: {len(result.cells)} of {len(result.plan.cells())} cells ran")


def comparison_table(comparisons: Sequence[Comparison], *, title: str, baseline_heading: str = "vs") -> Table:
    """A rich table: one row per function and load level, each change over its 95% interval."""
    from rich import box
    from rich.table import Table

    from ..results.charts import format_value
    from ..results.study_html import comparison_table as rows_of

    table = Table(title=title, show_lines=True, box=box.SQUARE)
    table.add_column("function", overflow="fold")
    table.add_column(baseline_heading, overflow="fold")
    table.add_column("rps", justify="right")
    for _, heading in SUMMARY_COLUMNS:
        table.add_column(heading, justify="right", overflow="fold")
    for row in rows_of(comparisons):
        cells = []
        for key, _ in SUMMARY_COLUMNS:
            found = row.cells.get(key)
            if found is None:
                cells.append("–")
                continue
            mark = ("*" if found.significant else "") + ("!" if found.uses_invalid_cells else "")
            change = ("+" if found.change > 0 else "") + format_value(found.change)
            if min(found.n_baseline, found.n_function) < 2:
                cells.append(f"{change}{mark}\n(n=1)")
            else:
                cells.append(f"{change}{mark}\n[{format_value(found.low, 2)},{format_value(found.high, 2)}]")
        table.add_row(row.function, row.baseline, f"{row.rate:g}", *cells)
    return table


def register(app: typer.Typer) -> None:
    app.command("study")(study)
