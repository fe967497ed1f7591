"""`meshload compare A B`: two runs (percentile by percentile) or two studies (function by function,
with 95% bootstrap intervals), B against A."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .. import terminal
from ..errors import UsageError
from .options import option

if TYPE_CHECKING:
    from rich.table import Table

    from ..results.compare import Comparison

#: Columns of the study comparison table (metric key, heading).
STUDY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("p50_ms", "Δp50 ms"),
    ("p99_ms", "Δp99 ms"),
    ("p99.9_ms", "Δp99.9 ms"),
    ("error_rate_pct", "Δerrors %"),
    ("proxy_cpu_mcores_per_krps", "Δproxy CPU mcores/krps"),
)


def compare(
    a: Annotated[Path, typer.Argument(help="Run or study folder A (the reference).", show_default=False)],
    b: Annotated[Path, typer.Argument(help="Run or study folder B (compared with A).", show_default=False)],
    as_json: Annotated[
        bool, option("--json", env="COMPARE_JSON", help="Print the comparison as JSON on stdout.")
    ] = False,
) -> None:
    """Compare B with A: latency percentiles of two runs, or every function of two studies."""
    kinds = (_kind(a), _kind(b))
    if kinds == ("run", "run"):
        _compare_runs(a, b, as_json=as_json)
    elif kinds == ("study", "study"):
        _compare_studies(a, b, as_json=as_json)
    else:
        raise UsageError(f"{a} is a {kinds[0]} folder and {b} a {kinds[1]} folder; compare two runs or two studies")


def _kind(folder: Path) -> str:
    from ..results.outputs import SMP_FILE
    from ..results.study_json import STUDY_FILE

    if (folder / STUDY_FILE).is_file():
        return "study"
    if (folder / SMP_FILE).is_file():
        return "run"
    raise UsageError(f"{folder}: neither a study folder (study.json) nor a run folder (smp.json); give --out folders")


def _compare_runs(a: Path, b: Path, *, as_json: bool) -> None:
    from rich.table import Table

    from ..results.cell_summary import run_metrics
    from ..results.compare import percentile_deltas
    from ..results.outputs import load_run_result

    run_a, run_b = load_run_result(a), load_run_result(b)
    deltas = percentile_deltas(run_a.corrected, run_b.corrected)
    if as_json:
        document = {
            "a": str(a),
            "b": str(b),
            "percentiles_ms": [{**asdict(d), "change_ms": d.change_ms, "change_pct": d.change_pct} for d in deltas],
            "a_metrics": run_metrics(run_a),
            "b_metrics": run_metrics(run_b),
            "a_actual_rps": run_a.actual_rps,
            "b_actual_rps": run_b.actual_rps,
            "a_valid": run_a.valid,
            "b_valid": run_b.valid,
        }
        terminal.result(json.dumps(document, indent=1))
        return
    table = Table(title=f"latency (corrected), B = {b} against A = {a}")
    for heading in ("percentile", "A ms", "B ms", "change ms", "change %"):
        table.add_column(heading, justify="right")
    for d in deltas:
        pct = f"{d.change_pct:+.1f}" if d.change_pct is not None else "–"
        table.add_row(f"p{d.percentile}", f"{d.a_ms:.3f}", f"{d.b_ms:.3f}", f"{d.change_ms:+.3f}", pct)
    terminal.table(table)
    terminal.info(f"rate: A {run_a.actual_rps:.1f} rps, B {run_b.actual_rps:.1f} rps")
    for name, run in (("A", run_a), ("B", run_b)):
        if not run.valid:
            terminal.warning(f"run {name} is INVALID: {'; '.join(run.validity)}")


def _compare_studies(a: Path, b: Path, *, as_json: bool) -> None:
    from ..results.bootstrap import interval_note
    from ..results.compare import compare_studies
    from ..results.study_json import load_study

    study_a, study_b = load_study(a), load_study(b)
    comparisons = compare_studies(study_a.cells, study_b.cells, seed=study_b.plan.seed)
    if not comparisons:
        raise UsageError(f"{a} and {b} share no function at the same load level; nothing to compare")
    if as_json:
        document = {
            "a": str(a),
            "b": str(b),
            "comparisons": [{**asdict(c), "relative_change_pct": c.relative_change_pct} for c in comparisons],
        }
        terminal.result(json.dumps(document, indent=1))
        return
    terminal.table(studies_table(comparisons, title=f"study B = {b} against study A = {a}"))
    repetitions = min(study_a.plan.repetitions, study_b.plan.repetitions)
    terminal.info(f"* interval excludes 0. {interval_note(repetitions)}")


def studies_table(comparisons: Sequence[Comparison], *, title: str) -> Table:
    """A rich table: one row per function and load level, B's change from A over its 95% interval
    (two studies are independent: their repetitions are compared unpaired)."""
    from rich import box
    from rich.table import Table

    from ..results.charts import format_value

    table = Table(title=title, show_lines=True, box=box.SQUARE)
    table.add_column("function", overflow="fold")
    table.add_column("against", overflow="fold")
    table.add_column("rps", justify="right")
    for _, heading in STUDY_COLUMNS:
        table.add_column(heading, justify="right", overflow="fold")
    rows: dict[tuple[str, str, float], dict[str, Comparison]] = {}
    for comparison in comparisons:
        rows.setdefault((comparison.function, comparison.baseline, comparison.rate), {})[comparison.metric] = comparison
    for (function, baseline, rate), by_metric in rows.items():
        cells = []
        for key, _ in STUDY_COLUMNS:
            found = by_metric.get(key)
            if found is None:
                cells.append("–")
                continue
            mark = ("*" if found.significant else "") + ("!" if found.uses_invalid_cells else "")
            change = ("+" if found.change > 0 else "") + format_value(found.change)
            if min(found.n_baseline, found.n_function) < 2:
                cells.append(f"{change}{mark}\n(n=1)")
            else:
                cells.append(f"{change}{mark}\n[{format_value(found.low, 2)},{format_value(found.high, 2)}]")
        table.add_row(function, baseline, f"{rate:g}", *cells)
    return table


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
