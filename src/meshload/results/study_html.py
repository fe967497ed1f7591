"""A study's page, `index.html`: self-contained (no script, stylesheet, font or image fetched; the
charts are inline SVG from `charts`). It holds a table of functions x metrics (the change against the
baseline with its 95% interval), the latency percentile spectrum of every function at each load
level, the overhead with its interval per function and load level, and the proxy CPU per 1,000
requests per second.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from .charts import PALETTE, Bar, bar_chart, format_value, latency_by_percentile, spectrum_series
from .compare import METRIC_BY_KEY, METRICS, Comparison
from .pages import render_page
from .study_json import study_document
from .study_result import StudyResult

INDEX_FILE = "index.html"
STUDY_TEMPLATE = "study.html.j2"
#: The metrics drawn as overhead charts (the table has every metric).
OVERHEAD_METRICS = ("p50_ms", "p99_ms")


def render_study_html(
    study: StudyResult,
    document: dict[str, object] | None = None,
    comparisons: Sequence[Comparison] | None = None,
) -> str:
    """The self-contained `index.html` of a study (pass its `study.json` document and comparisons
    when already at hand)."""
    comparisons = study.comparisons() if comparisons is None else comparisons
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
        spectra=[spectrum_chart(study, rate, colours) for rate in plan.load_levels],
        overhead=[overhead_chart(comparisons, key, plan.load_levels) for key in OVERHEAD_METRICS],
        cpu_svg=proxy_cpu_chart(study),
        colours=colours,
        invalid=[cell for cell in study.cells if not cell.valid],
        fmt=format_change,
        fmt_value=format_value,
        when=_format_time,
    )


def function_colours(study: StudyResult) -> dict[str, str]:
    """One colour per function of the plan, the same in the table and every chart."""
    return {f.name: PALETTE[i % len(PALETTE)] for i, f in enumerate(study.plan.functions)}


# -- the table ------------------------------------------------------------------------------------


@dataclass
class TableRow:
    """One function at one load level: its change in every metric."""

    function: str
    baseline: str
    rate: float
    cells: dict[str, Comparison]


def comparison_table(comparisons: Sequence[Comparison]) -> list[TableRow]:
    """Comparisons grouped as rows (function, load level) x columns (metrics), in plan order."""
    rows: dict[tuple[str, float], TableRow] = {}
    for comparison in comparisons:
        key = (comparison.function, comparison.rate)
        row = rows.setdefault(key, TableRow(comparison.function, comparison.baseline, comparison.rate, {}))
        row.cells[comparison.metric] = comparison
    return list(rows.values())


def format_change(comparison: Comparison, *, with_interval: bool = True) -> str:
    """The change and its interval in the metric's unit, e.g. "+1.23 [0.81, 1.70]"."""
    text = ("+" if comparison.change > 0 else "") + format_value(comparison.change)
    if min(comparison.n_baseline, comparison.n_function) < 2:
        return text + " (no interval: 1 repetition)" if with_interval else text
    if with_interval:
        text += f" [{format_value(comparison.low)}, {format_value(comparison.high)}]"
    return text


def _format_time(unix_ms: int) -> str:
    if not unix_ms:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix_ms / 1000))


# -- the charts -----------------------------------------------------------------------------------


def spectrum_chart(study: StudyResult, rate: float, colours: dict[str, str]) -> Markup:
    """Latency by percentile, one line per function, at one load level; the y axis is logarithmic, so
    a sidecar's added fraction of a millisecond stays visible next to a slow tail."""
    series = []
    for function in study.plan.functions:
        merged = study.merged_latency(function.name, rate)
        if merged.total_count:
            # "!": invalid cells included (fewer than 2 valid repetitions; see `compare.trusted_cells`).
            name = function.name + (" !" if study.arm(function.name, rate)[1] else "")
            series.append(spectrum_series(name, colours[function.name], merged))
    return latency_by_percentile(
        series,
        title=f"Latency percentile spectrum at {rate:g} rps (corrected, all repetitions merged)",
        y_log=True,
        empty="no cell at this load level",
    )


def overhead_chart(comparisons: Sequence[Comparison], metric: str, rates: Sequence[float]) -> Markup:
    """The change in one metric against the baseline, per function and load level, with 95% bars."""
    selected = [c for c in comparisons if c.metric == metric]
    unit = METRIC_BY_KEY[metric].unit
    flagged = {c.function for c in selected if c.uses_invalid_cells}
    groups = list(
        dict.fromkeys(
            (c.function, f"{c.function} vs {c.baseline}" + (" !" if c.function in flagged else "")) for c in selected
        )
    )
    return bar_chart(
        title=f"Change in {METRIC_BY_KEY[metric].label} against the baseline ({unit}), 95% interval",
        groups=groups,
        series=[(rate, f"{rate:g} rps") for rate in rates],
        bars={(c.function, c.rate): Bar(c.change, c.low, c.high) for c in selected},
        unit=unit,
        empty="no data (no comparison yet)",
    )


def proxy_cpu_chart(study: StudyResult) -> Markup:
    """Proxy CPU per 1,000 rps per function and load level: mean of repetitions, whisker min to max."""
    plan = study.plan
    bars: dict[tuple[str, float], Bar] = {}
    for function in plan.functions:
        for rate in plan.load_levels:
            values = [cell.metrics.get("proxy_cpu_mcores_per_krps") for cell in study.arm(function.name, rate)[0]]
            found = [v for v in values if v is not None]
            if found:
                bars[function.name, rate] = Bar(sum(found) / len(found), min(found), max(found))
    return bar_chart(
        title="Proxy CPU per 1,000 rps (millicores; bar: mean of repetitions, whisker: min to max)",
        groups=[(f.name, f.name) for f in plan.functions],
        series=[(rate, f"{rate:g} rps") for rate in plan.load_levels],
        bars=bars,
        unit="mcores",
        empty="no data (no mesh sampling)",
    )
