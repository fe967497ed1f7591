"""The end of `meshload study` on the terminal: the comparisons as a table (the paired change with
its interval, or how large a change it rules out), each arm's capacity (`find_max:`), the study's
resolution, its targets, its A/A calibration, the requests per replica, and notes on invalid or
skipped cells. `meshload report` prints the same for a study folder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import terminal

if TYPE_CHECKING:  # imported lazily at run time, so `meshload --help` stays fast
    from rich.table import Table

    from ..results.aa_calibration import AACalibration
    from ..results.paired import PairedComparison
    from ..results.resolution import ResolutionRow
    from ..results.study_budget import TargetRow
    from ..results.study_html import ReplicaRow
    from ..results.study_result import StudyResult

#: Columns of the summary table (metric key, heading); index.html has every metric.
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("p50_ms", "Δp50 ms"),
    ("p99_ms", "Δp99 ms"),
    ("p99.9_ms", "Δp99.9 ms"),
    ("error_rate_pct", "Δerrors %"),
    ("proxy_cpu_mcores_per_krps", "Δproxy CPU mcores/krps"),
)
#: The metrics of the resolution table on the terminal (index.html has every metric).
RESOLUTION_METRICS = ("p50_ms", "p99_ms", "proxy_cpu_mcores_per_krps")


def print_study_summary(result: StudyResult) -> None:
    """The comparisons as a table on stdout, then the resolution, the targets, the calibration, and
    the notes on intervals and any invalid cells."""
    from ..results.paired import paired_interval_note
    from ..results.study_html import replica_rows

    comparisons = result.comparisons()
    terminal.table(paired_table(comparisons, title=f"study {result.plan.name}: change against the baseline"))
    terminal.info(
        "* interval excludes 0; n.s.: no significant difference, and the interval rules out a change beyond ±x. "
        + paired_interval_note(result.blocks_done)
    )
    if result.capacity:
        _print_capacity(result)
    resolution = result.resolution(comparisons)
    if resolution:
        terminal.table(resolution_table(resolution))
    targets = result.targets(comparisons)
    if targets:
        _print_targets(targets, result)
    calibration = result.calibration()
    if calibration is not None:
        _print_calibration(calibration)
    elif result.plan.calibrate:
        terminal.warning("the A/A calibration needs at least 2 blocks per load level")
    if any(c.uses_invalid_cells for c in comparisons):
        terminal.warning("! marks a change that includes invalid cells (fewer than 2 blocks had both cells valid)")
    balancing = replica_rows(result)
    if balancing:
        terminal.table(replica_table(balancing))
    for arm, reason in result.not_supported().items():
        terminal.info(f"{arm}: not supported, its cells skipped ({reason})")
    invalid = [cell for cell in result.cells if not cell.valid and not cell.not_supported]
    if invalid:
        terminal.warning(
            f"{len(invalid)} of {len(result.cells)} cells invalid: their blocks are left out of the comparisons "
            "that keep 2 or more blocks without them (see index.html)"
        )
    if not result.complete:
        terminal.warning(f"the study is incomplete: {len(result.cells)} of {result.planned_cells} cells ran")


def replica_table(rows: Sequence[ReplicaRow]) -> Table:
    """Each arm's share of requests per replica, and its latency, one row per arm, load level and service."""
    from rich import box
    from rich.table import Table

    table = Table(title="requests per replica (counted by the replicas) and latency", box=box.SQUARE)
    for heading in ("function", "rps", "service", "share per replica", "p50 ms", "p99 ms"):
        table.add_column(heading, justify="right" if heading in ("rps", "p50 ms", "p99 ms") else "left")
    for row in rows:
        shares = "  ".join(f"{name} {100 * share:.1f}%" for name, share in row.shares.items())
        table.add_row(row.function, f"{row.rate:g}", row.service, shares, f"{row.p50_ms:.2f}", f"{row.p99_ms:.2f}")
    return table


def paired_table(comparisons: Sequence[PairedComparison], *, title: str) -> Table:
    """A rich table: one row per function and load level, each paired change over its 95% interval,
    or, when not significant, over how large a change it rules out."""
    from rich import box
    from rich.table import Table

    from ..results.charts import format_value
    from ..results.study_html import comparison_table as rows_of

    table = Table(title=title, show_lines=True, box=box.SQUARE)
    table.add_column("function", overflow="fold")
    table.add_column("vs", overflow="fold")
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
            if found.low is None or found.high is None:
                cells.append(f"{change}{mark}\n(1 block)")
                continue
            interval = f"[{format_value(found.low, 2)},{format_value(found.high, 2)}]"
            if found.sd_blocks == 0 and not found.significant:
                interval = "(no spread)"
            elif not found.significant and found.rules_out_beyond is not None:
                interval += f"\nn.s. <±{format_value(found.rules_out_beyond, 2)}"
            cells.append(f"{change}{mark}\n{interval}")
        table.add_row(row.function, row.baseline, f"{row.rate:g}", *cells)
    return table


def resolution_table(rows: Sequence[ResolutionRow]) -> Table:
    """The smallest change the study calls significant (and detects with 80% power) per load level."""
    from rich import box
    from rich.table import Table

    from ..results.cell_summary import METRIC_BY_KEY
    from ..results.charts import format_value

    table = Table(
        title="resolution: the smallest change called significant / detected with 80% power, any function",
        box=box.SQUARE,
    )
    table.add_column("rps", justify="right")
    table.add_column("blocks", justify="right")
    shown = [key for key in RESOLUTION_METRICS if any(row.metric == key for row in rows)]
    for key in shown:
        table.add_column(f"Δ{METRIC_BY_KEY[key].label} {METRIC_BY_KEY[key].unit}", justify="right")
    for rate in sorted({row.rate for row in rows}):
        at_rate = {row.metric: row for row in rows if row.rate == rate}
        figures = []
        for key in shown:
            row = at_rate.get(key)
            figures.append(
                f"±{format_value(row.detectable_change, 2)} / ±{format_value(row.detectable_change_80, 2)}"
                if row is not None
                else "–"
            )
        blocks = min(row.n_blocks for row in at_rate.values())
        table.add_row(f"{rate:g}", str(blocks), *figures)
    return table


def _print_capacity(result: StudyResult) -> None:
    """Each arm's knee: "mtls: 1,850 req/s [1,850, 1,950), -12.0% vs sidecar"."""
    spec = result.plan.find_max
    objective = f"{spec.slo}" + (f", errors {spec.errors}" if spec.errors else "") if spec is not None else ""
    terminal.info(f"capacity: the highest rate meeting {objective} [passing, failing)")
    for line in result.capacity_lines():
        terminal.result(f"  {line.describe()}")


def _print_targets(targets: Sequence[TargetRow], result: StudyResult) -> None:
    if result.budget is not None and result.budget.stop_reason:
        terminal.info(f"budget: stopped, {result.budget.stop_reason}")
    for target in targets:
        line = f"target {target.written}: {'reached' if target.reached else 'NOT reached'}, {target.why}"
        if target.reached:
            terminal.info(line)
        else:
            terminal.warning(line)


def _print_calibration(calibration: AACalibration) -> None:
    fp, coverage = calibration.false_positives, calibration.coverage
    fp_text = (
        f"{100 * fp.count / fp.total:.1f}% [{100 * fp.low:.1f}, {100 * fp.high:.1f}]" if fp.total else "no comparison"
    )
    coverage_text = (
        f"{100 * coverage.count / coverage.total:.1f}% [{100 * coverage.low:.1f}, {100 * coverage.high:.1f}]"
        if coverage.total
        else "no sub-study"
    )
    terminal.result(
        f"A/A calibration ({calibration.arm_a} vs {calibration.arm_b}): false positives {fp_text} "
        f"({fp.count} of {fp.total} comparisons called significant; nominal "
        f"{100 * calibration.nominal_false_positive_rate:.0f}%); coverage of {calibration.sub_study_blocks}-block "
        f"intervals {coverage_text} ({coverage.count} of {coverage.total} sub-studies; nominal "
        f"{100 * calibration.confidence:.0f}%)"
    )
