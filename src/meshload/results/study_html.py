"""A study's page, `index.html`: self-contained (no script, stylesheet, font or image fetched; the
charts are inline SVG from `charts`). It holds the targets and how far the study got (budgeted
studies), the A/A calibration (A/A studies), a table of functions x metrics (the paired change
against the baseline with its 95% interval, and for a change not called significant, how large a
change the interval rules out), each function's capacity (a plan with `find_max:`), the study's
resolution per load level and metric, the latency percentile spectrum of every function at each load
level, the overhead with its interval per function and load level, the proxy CPU per 1,000 requests
per second, and the generator's schedule lag in every second of the study.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from .cell_summary import METRIC_BY_KEY, METRICS, CellSummary
from .charts import (
    PALETTE,
    Bar,
    Series,
    bar_chart,
    format_value,
    latency_by_percentile,
    schedule_lag_chart,
    spectrum_series,
)
from .pages import render_page
from .paired import PairedComparison
from .study_json import study_document
from .study_result import StudyResult

INDEX_FILE = "index.html"
STUDY_TEMPLATE = "study.html.j2"
#: The metrics drawn as overhead charts (the table has every metric).
OVERHEAD_METRICS = ("p50_ms", "p99_ms")


def render_study_html(
    study: StudyResult,
    document: dict[str, object] | None = None,
    comparisons: Sequence[PairedComparison] | None = None,
) -> str:
    """The self-contained `index.html` of a study (pass its `study.json` document and comparisons
    when already at hand)."""
    comparisons = list(study.comparisons() if comparisons is None else comparisons)
    document = study_document(study, comparisons) if document is None else document
    plan = study.plan
    colours = function_colours(study)
    return render_page(
        STUDY_TEMPLATE,
        study=study,
        plan=plan,
        document=document,
        table=comparison_table(comparisons),
        metrics=METRICS,
        metric_by_key=METRIC_BY_KEY,
        resolution=study.resolution(comparisons),
        targets=study.targets(comparisons),
        calibration=study.calibration(),
        spectra=[spectrum_chart(study, rate, colours) for rate in plan.load_levels],
        overhead=[overhead_chart(comparisons, key, plan.load_levels) for key in OVERHEAD_METRICS],
        cpu_svg=proxy_cpu_chart(study),
        replicas=replica_rows(study),
        replica_svgs=replica_charts(study),
        topology_of={f.arm_name: f.topology or "" for f in plan.functions},
        not_supported=study.not_supported(),
        capacity=study.capacity_lines(),
        lag_svg=study_lag_chart(study, colours),
        colours=colours,
        invalid=[cell for cell in study.cells if not cell.valid and not cell.not_supported],
        worst_second=worst_lag_second,
        fmt=format_change,
        rules_out=rules_out,
        fmt_value=format_value,
        when=_format_time,
    )


def function_colours(study: StudyResult) -> dict[str, str]:
    """One colour per arm of the plan, the same in the table and every chart."""
    return {f.arm_name: PALETTE[i % len(PALETTE)] for i, f in enumerate(study.plan.functions)}


# -- the table ------------------------------------------------------------------------------------


@dataclass
class TableRow:
    """One function at one load level: its change in every metric."""

    function: str
    baseline: str
    rate: float
    cells: dict[str, PairedComparison]


def comparison_table(comparisons: Sequence[PairedComparison]) -> list[TableRow]:
    """Comparisons grouped as rows (function, load level) x columns (metrics), in plan order."""
    rows: dict[tuple[str, float], TableRow] = {}
    for comparison in comparisons:
        key = (comparison.function, comparison.rate)
        row = rows.setdefault(key, TableRow(comparison.function, comparison.baseline, comparison.rate, {}))
        row.cells[comparison.metric] = comparison
    return list(rows.values())


def format_change(comparison: PairedComparison, *, with_interval: bool = True, digits: int = 3) -> str:
    """The change and its interval in the metric's unit, e.g. "+1.23 [0.81, 1.70]"."""
    text = ("+" if comparison.change > 0 else "") + format_value(comparison.change, digits)
    if comparison.low is None or comparison.high is None:
        return text + " (no interval: 1 block)" if with_interval else text
    if with_interval:
        text += f" [{format_value(comparison.low, digits)}, {format_value(comparison.high, digits)}]"
    return text


def rules_out(comparison: PairedComparison, digits: int = 2) -> str:
    """For a change not called significant: how large a change its interval rules out ("" otherwise).

    Blocks that all differ by exactly 0 (no error in any cell) have an interval of no width, which
    bounds nothing: said as such."""
    if comparison.significant or comparison.rules_out_beyond is None:
        return ""
    if comparison.sd_blocks == 0:
        return "no difference in any block; no spread to bound a change by"
    return f"no significant difference; rules out beyond ±{format_value(comparison.rules_out_beyond, digits)}"


def _format_time(unix_ms: int) -> str:
    if not unix_ms:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix_ms / 1000))


def worst_lag_second(cell: CellSummary) -> tuple[float, float] | None:
    """The cell's second with the highest schedule-lag p99, as (seconds after the cell's start, lag p99
    in ms); None when the cell has no per-second figures."""
    if not cell.lag_seconds:
        return None
    first = cell.lag_seconds[0]["unix_ms"]
    worst = max(cell.lag_seconds, key=lambda second: second["lag_p99_ms"])
    return (worst["unix_ms"] - first) / 1000.0, worst["lag_p99_ms"]


# -- requests per replica -------------------------------------------------------------------------


@dataclass
class ReplicaRow:
    """One arm at one load level: how its requests to one replicated service spread over the
    replicas (all its repetitions), beside its latency."""

    function: str
    topology: str
    rate: float
    service: str
    counts: dict[str, int]
    p50_ms: float
    p99_ms: float

    @property
    def shares(self) -> dict[str, float]:
        total = sum(self.counts.values())
        return {name: count / total if total else 0.0 for name, count in self.counts.items()}

    @property
    def spread_pct(self) -> float:
        """How far the busiest replica is above an even share, in percentage points."""
        shares = self.shares
        return 100.0 * (max(shares.values()) - 1.0 / len(shares)) if shares else 0.0


def replica_rows(study: StudyResult) -> list[ReplicaRow]:
    """Every arm and load level whose cells counted requests per replica, in plan order."""
    rows = []
    for function in study.plan.functions:
        arm = function.arm_name
        for rate in study.plan.load_levels:
            counted = study.replica_counts(arm, rate)
            if not counted:
                continue
            merged = study.merged_latency(arm, rate)
            at = merged.values_at_percentiles([50.0, 99.0]) if merged.total_count else {50.0: 0.0, 99.0: 0.0}
            for service, counts in counted.items():
                topology = function.topology or ""
                rows.append(ReplicaRow(arm, topology, rate, service, counts, at[50.0] / 1000.0, at[99.0] / 1000.0))
    return rows


def replica_charts(study: StudyResult) -> list[Markup]:
    """Per load level and service, the share of requests per replica of every arm (bars, percent)."""
    rows = replica_rows(study)
    charts = []
    for rate, service in dict.fromkeys((row.rate, row.service) for row in rows):
        selected = [row for row in rows if row.rate == rate and row.service == service]
        replicas = list(dict.fromkeys(name for row in selected for name in row.counts))
        bars = {
            (row.function, float(index)): Bar(100.0 * share, 100.0 * share, 100.0 * share)
            for row in selected
            for index, share in enumerate(row.shares.get(name, 0.0) for name in replicas)
        }
        charts.append(
            bar_chart(
                title=f"Share of {service} requests per replica at {rate:g} rps (%; even: {100 / len(replicas):.1f}%)",
                groups=[(row.function, row.function) for row in selected],
                series=[(float(index), name) for index, name in enumerate(replicas)],
                bars=bars,
                unit="%",
                empty="no requests counted",
            )
        )
    return charts


# -- the charts -----------------------------------------------------------------------------------


def spectrum_chart(study: StudyResult, rate: float, colours: dict[str, str]) -> Markup:
    """Latency by percentile, one line per function, at one load level; the y axis is logarithmic, so
    a sidecar's added fraction of a millisecond stays visible next to a slow tail."""
    series = []
    for function in study.plan.functions:
        arm = function.arm_name
        merged = study.merged_latency(arm, rate)
        if merged.total_count:
            # "!": invalid cells included (fewer than 2 valid repetitions; see `compare.trusted_cells`).
            name = arm + (" !" if study.arm(arm, rate)[1] else "")
            series.append(spectrum_series(name, colours[arm], merged))
    return latency_by_percentile(
        series,
        title=f"Latency percentile spectrum at {rate:g} rps (corrected, all repetitions merged)",
        y_log=True,
        empty="no cell at this load level",
    )


def overhead_chart(comparisons: Sequence[PairedComparison], metric: str, rates: Sequence[float]) -> Markup:
    """The paired change in one metric against the baseline, per function and load level, with 95% bars."""
    selected = [c for c in comparisons if c.metric == metric]
    unit = METRIC_BY_KEY[metric].unit
    flagged = {c.function for c in selected if c.uses_invalid_cells}
    groups = list(
        dict.fromkeys(
            (c.function, f"{c.function} vs {c.baseline}" + (" !" if c.function in flagged else "")) for c in selected
        )
    )
    return bar_chart(
        title=f"Change in {METRIC_BY_KEY[metric].label} against the baseline ({unit}), paired 95% interval",
        groups=groups,
        series=[(rate, f"{rate:g} rps") for rate in rates],
        bars={
            (c.function, c.rate): Bar(
                c.change, c.low if c.low is not None else c.change, c.high if c.high is not None else c.change
            )
            for c in selected
        },
        unit=unit,
        empty="no data (no comparison yet)",
    )


def proxy_cpu_chart(study: StudyResult) -> Markup:
    """Proxy CPU per 1,000 rps per function and load level: mean of repetitions, whisker min to max."""
    plan = study.plan
    bars: dict[tuple[str, float], Bar] = {}
    for function in plan.functions:
        arm = function.arm_name
        for rate in plan.load_levels:
            values = [cell.metrics.get("proxy_cpu_mcores_per_krps") for cell in study.arm(arm, rate)[0]]
            found = [v for v in values if v is not None]
            if found:
                bars[arm, rate] = Bar(sum(found) / len(found), min(found), max(found))
    return bar_chart(
        title="Proxy CPU per 1,000 rps (millicores; bar: mean of repetitions, whisker: min to max)",
        groups=[(f.arm_name, f.arm_name) for f in plan.functions],
        series=[(rate, f"{rate:g} rps") for rate in plan.load_levels],
        bars=bars,
        unit="mcores",
        empty="no data (no mesh sampling)",
    )


def study_lag_chart(study: StudyResult, colours: dict[str, str]) -> Markup:
    """The generator's schedule lag p99 in every second of every cell, on the study's own clock
    (minutes since it started), one line per cell in its function's colour: a stall shows where, and
    in which cell, it happened."""
    origin_ms = study.started_unix_ms
    series = [
        Series(
            cell.function,
            colours.get(cell.function, PALETTE[-1]),
            [(second["unix_ms"] - origin_ms) / 60_000.0 for second in cell.lag_seconds],
            [second["lag_p99_ms"] for second in cell.lag_seconds],
        )
        for cell in study.cells
        if cell.lag_seconds
    ]
    return schedule_lag_chart(
        series,
        title="Schedule lag p99 in every second of the study (one line per cell)",
        x_label="minutes after the study started",
        empty="no per-second figures",
    )
