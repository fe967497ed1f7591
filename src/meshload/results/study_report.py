"""A study's result and its files: `study.json` (every cell and every comparison) and `index.html`.

`index.html` is self-contained: no script, stylesheet, font or image is fetched from anywhere; the
plots are inline SVG drawn here. It holds a table of functions x metrics (change against the baseline
with its 95% interval), the latency percentile spectrum of every function, the overhead with error
bars per function and load level, and the proxy CPU per 1,000 requests per second.

`load_study` reads `study.json` back, so `meshload report DIR` re-renders a study from its files.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jinja2
import markupsafe

from ..scenarios.study_plan import StudyPlan
from .chart_ticks import nice_ticks
from .compare import (
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    METRIC_BY_KEY,
    METRICS,
    CellSummary,
    Comparison,
    compare_study,
    interval_note,
    trusted_cells,
)
from .histogram import LatencyHistogram

STUDY_FILE = "study.json"
INDEX_FILE = "index.html"
STUDY_KIND = "meshload-study"
STUDY_FORMAT_VERSION = 1

#: Percentiles drawn in the spectrum plot ("nines" on the x axis).
SPECTRUM_PERCENTILES: tuple[float, ...] = (0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99)
#: Enough distinct colours for the built-in study's functions (Tableau 10, colour-blind aware).
PALETTE: tuple[str, ...] = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


@dataclass
class StudyResult:
    """What a study measured: its plan, its environment and every cell, in run order."""

    plan: StudyPlan
    started_unix_ms: int
    ended_unix_ms: int = 0
    environment: dict[str, object] = field(default_factory=dict)
    cells: list[CellSummary] = field(default_factory=list)

    @classmethod
    def start(cls, plan: StudyPlan, *, environment: dict[str, object] | None = None) -> StudyResult:
        return cls(plan=plan, started_unix_ms=int(time.time() * 1000), environment=dict(environment or {}))

    def finish(self, *, environment_after: object = None) -> None:
        self.ended_unix_ms = int(time.time() * 1000)
        if environment_after is not None:
            self.environment["load_average_after"] = environment_after

    @property
    def complete(self) -> bool:
        return len(self.cells) == len(self.plan.cells())

    def comparisons(self) -> list[Comparison]:
        """Each function against its baseline at every load level (see `compare.compare_study`)."""
        return compare_study(self.cells, self.plan.baselines(), seed=self.plan.seed)

    def arm(self, function: str, rate: float) -> tuple[list[CellSummary], bool]:
        """The cells of one function at one load level that the statistics use, and whether they
        are invalid ones used for want of valid ones (see `compare.trusted_cells`)."""
        return trusted_cells([c for c in self.cells if c.function == function and c.rate == rate])

    def merged_latency(self, function: str, rate: float) -> LatencyHistogram:
        """The repetitions of one function at one load level (those `arm` uses), merged exactly."""
        merged = LatencyHistogram()
        for cell in self.arm(function, rate)[0]:
            if cell.histogram:
                merged.add(cell.latency())
        return merged


# -- study.json --------------------------------------------------------------------------------


def study_document(study: StudyResult, comparisons: Sequence[Comparison] | None = None) -> dict[str, object]:
    """The content of `study.json` (`comparisons` when already computed, else computed here)."""
    plan = study.plan
    comparisons = study.comparisons() if comparisons is None else comparisons
    return {
        "kind": STUDY_KIND,
        "format_version": STUDY_FORMAT_VERSION,
        "name": plan.name,
        "started_unix_ms": study.started_unix_ms,
        "ended_unix_ms": study.ended_unix_ms,
        "duration_s": round(max(study.ended_unix_ms - study.started_unix_ms, 0) / 1000.0, 3),
        "complete": study.complete,
        "plan": plan.model_dump(mode="json"),
        "environment": study.environment,
        "functions": [
            {"name": f.name, "label": f.label, "params": f.params, "baseline": plan.baseline_of(f.name)}
            for f in plan.functions
        ],
        "load_levels_rps": list(plan.load_levels),
        "repetitions": plan.repetitions,
        "interval": {
            "method": "percentile bootstrap of the difference of means, each arm resampled with replacement",
            "confidence": CONFIDENCE,
            "resamples": BOOTSTRAP_RESAMPLES,
            "seed": plan.seed,
            "note": interval_note(plan.repetitions),
        },
        "metrics": [asdict(metric) for metric in METRICS],
        "comparisons": [
            {**asdict(comparison), "relative_change_pct": comparison.relative_change_pct} for comparison in comparisons
        ],
        "cells": [asdict(cell) for cell in study.cells],
    }


def write_study_outputs(study: StudyResult, out_dir: Path, *, html: bool = True) -> dict[str, Path]:
    """Write `study.json` (and `index.html` unless `html` is False) into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    comparisons = study.comparisons()
    document = study_document(study, comparisons)
    study_path = out_dir / STUDY_FILE
    # Write then rename: a study interrupted mid-write keeps the previous complete file.
    temporary = study_path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=1, allow_nan=False), encoding="utf-8")
    temporary.replace(study_path)
    written["study.json"] = study_path
    if html:
        index_path = out_dir / INDEX_FILE
        index_path.write_text(render_study_html(study, document, comparisons), encoding="utf-8")
        written["index.html"] = index_path
    return written


def load_study(out_dir: Path) -> StudyResult:
    """Rebuild a study from its `study.json` (ValueError when the folder holds no study)."""
    path = out_dir / STUDY_FILE if out_dir.is_dir() else out_dir
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("kind") != STUDY_KIND:
        raise ValueError(f"{path} is not a meshload study file")
    cells = [CellSummary(**cell) for cell in document["cells"]]
    return StudyResult(
        plan=StudyPlan.model_validate(document["plan"]),
        started_unix_ms=int(document["started_unix_ms"]),
        ended_unix_ms=int(document["ended_unix_ms"]),
        environment=dict(document.get("environment", {})),
        cells=cells,
    )


# -- index.html --------------------------------------------------------------------------------

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("meshload.results", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_study_html(
    study: StudyResult,
    document: dict[str, object] | None = None,
    comparisons: Sequence[Comparison] | None = None,
) -> str:
    """The self-contained `index.html` of a study (pass what `write_study_outputs` already has)."""
    comparisons = study.comparisons() if comparisons is None else comparisons
    document = document if document is not None else study_document(study, comparisons)
    plan = study.plan
    colours = {f.name: PALETTE[i % len(PALETTE)] for i, f in enumerate(plan.functions)}
    spectra = [(rate, spectrum_svg(study, rate, colours)) for rate in plan.load_levels]
    overhead = [
        (METRIC_BY_KEY[key].label, overhead_svg(comparisons, key, plan.load_levels)) for key in ("p50_ms", "p99_ms")
    ]
    template = _environment.get_template("study.html")
    return template.render(
        study=study,
        plan=plan,
        document=document,
        table=comparison_table(comparisons),
        metrics=METRICS,
        spectra=spectra,
        overhead=overhead,
        cpu_svg=proxy_cpu_svg(study),
        colours=colours,
        invalid=[cell for cell in study.cells if not cell.valid],
        fmt=format_change,
        fmt_value=format_value,
        when=_format_time,
    )


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


def format_value(value: float | None, digits: int = 3) -> str:
    """A figure with about `digits` significant digits, for tables."""
    if value is None or not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(digits - 1 - magnitude, 0)
    return f"{value:.{decimals}f}"


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


# -- plots (inline SVG) ---------------------------------------------------------------------------

_WIDTH, _HEIGHT = 720, 320
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 150, 28, 44


def _svg_open(title: str, height: int = _HEIGHT) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {height}" width="{_WIDTH}" '
        f'height="{height}" role="img" font-family="sans-serif" font-size="11">',
        f"<title>{_escape(title)}</title>",
        f'<text x="{_LEFT}" y="16" font-size="13" font-weight="bold">{_escape(title)}</text>',
    ]


def _escape(text: str) -> str:
    return str(markupsafe.escape(text))


def spectrum_svg(study: StudyResult, rate: float, colours: dict[str, str]) -> str:
    """Latency by percentile, one line per function, at one load level.

    The x axis is in "nines" (-log10(1 - p)): 90% sits at 1, 99% at 2, 99.9% at 3, so the tail gets
    as much room as the body. The y axis is logarithmic: a sidecar's added fraction of a
    millisecond stays visible next to a slow tail.
    """
    lines: dict[str, list[tuple[float, float]]] = {}
    for function in study.plan.functions:
        merged = study.merged_latency(function.name, rate)
        if merged.total_count == 0:
            continue
        values = merged.values_at_percentiles(SPECTRUM_PERCENTILES)
        # "!": invalid cells included (fewer than 2 valid repetitions; see `compare.trusted_cells`).
        name = function.name + (" !" if study.arm(function.name, rate)[1] else "")
        lines[name] = [(_nines(p), max(values[p], 1) / 1000.0) for p in SPECTRUM_PERCENTILES]
    parts = _svg_open(f"Latency percentile spectrum at {rate:g} rps (corrected, all repetitions merged)")
    if not lines:
        parts.append(f'<text x="{_LEFT}" y="{_HEIGHT / 2}">no cell at this load level</text></svg>')
        return "\n".join(parts)
    x_max = _nines(SPECTRUM_PERCENTILES[-1])
    y_values = [y for points in lines.values() for _, y in points]
    # Axis ends on the 1-2-5 values just outside the data, so the lines fill the plot.
    log_low = math.log10(max(v for v in _one_two_five(min(y_values)) if v <= min(y_values)))
    log_high = math.log10(min(v for v in _one_two_five(max(y_values)) if v >= max(y_values)))
    if log_high - log_low < 1e-9:
        log_high = log_low + 1
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def x_of(nines: float) -> float:
        return _LEFT + plot_w * nines / x_max

    def y_of(ms: float) -> float:
        return _TOP + plot_h * (1 - (math.log10(ms) - log_low) / (log_high - log_low))

    for decade in range(math.floor(log_low), math.ceil(log_high) + 1):
        for step in (1, 2, 5):
            value = step * 10.0**decade
            if not 10.0**log_low * 0.999 <= value <= 10.0**log_high * 1.001:
                continue
            y = y_of(value)
            parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
            parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    for p in (0.0, 50.0, 90.0, 99.0, 99.9, 99.99):
        x = x_of(_nines(p))
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_TOP + plot_h}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{_TOP + plot_h + 14}" text-anchor="middle">p{p:g}</text>')
    parts.append(
        f'<text x="{_LEFT + plot_w / 2}" y="{_HEIGHT - 6}" text-anchor="middle">percentile</text>'
        f'<text x="14" y="{_TOP + plot_h / 2}" transform="rotate(-90 14 {_TOP + plot_h / 2})" '
        'text-anchor="middle">latency (ms, log scale)</text>'
    )
    legend = []
    for index, (name, points) in enumerate(lines.items()):
        colour = colours.get(name.removesuffix(" !"), PALETTE[index % len(PALETTE)])
        path = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}">'
            f"<title>{_escape(name)}</title></polyline>"
        )
        legend.append((name, colour))
    parts.extend(_legend(legend))
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(entries: list[tuple[str, str]]) -> list[str]:
    """A colour swatch and a label per entry, stacked in the right margin."""
    parts = []
    for index, (label, colour) in enumerate(entries):
        y = _TOP + 14 * index + 8
        parts.append(
            f'<rect x="{_WIDTH - _RIGHT + 12}" y="{y - 8}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{_WIDTH - _RIGHT + 26}" y="{y + 1}">{_escape(label)}</text>'
        )
    return parts


def _one_two_five(value: float) -> list[float]:
    """The 1-2-5 values of the decades around `value` (for log-axis ends)."""
    decade = math.floor(math.log10(value))
    return [step * 10.0**d for d in (decade - 1, decade, decade + 1) for step in (1, 2, 5)]


def _nines(percentile: float) -> float:
    return -math.log10(1.0 - min(percentile, 99.999) / 100.0)


def overhead_svg(comparisons: Sequence[Comparison], metric: str, rates: Sequence[float]) -> str:
    """The change in one metric against the baseline, per function and load level, with 95% bars."""
    selected = [c for c in comparisons if c.metric == metric]
    unit = METRIC_BY_KEY[metric].unit
    flagged = {c.function for c in selected if c.uses_invalid_cells}
    groups = list(
        dict.fromkeys(
            (c.function, f"{c.function} vs {c.baseline}" + (" !" if c.function in flagged else "")) for c in selected
        )
    )
    bars = {(c.function, c.rate): (c.change, c.low, c.high) for c in selected}
    title = f"Change in {METRIC_BY_KEY[metric].label} against the baseline ({unit}), 95% interval"
    return _grouped_bars(title, groups, [f"{r:g} rps" for r in rates], list(rates), bars, unit)


def proxy_cpu_svg(study: StudyResult) -> str:
    """Proxy CPU per 1,000 rps per function and load level: mean of repetitions, bar = min..max."""
    plan = study.plan
    bars: dict[tuple[str, float], tuple[float, float, float]] = {}
    for function in plan.functions:
        for rate in plan.load_levels:
            values = [cell.metrics.get("proxy_cpu_mcores_per_krps") for cell in study.arm(function.name, rate)[0]]
            found = [v for v in values if v is not None]
            if found:
                bars[function.name, rate] = (sum(found) / len(found), min(found), max(found))
    title = "Proxy CPU per 1,000 rps (millicores; bar: mean of repetitions, whisker: min to max)"
    groups = [(f.name, f.name) for f in plan.functions]
    return _grouped_bars(
        title, groups, [f"{r:g} rps" for r in plan.load_levels], list(plan.load_levels), bars, "mcores"
    )


def _grouped_bars(
    title: str,
    groups: list[tuple[str, str]],
    series_labels: list[str],
    series_keys: list[float],
    bars: dict[tuple[str, float], tuple[float, float, float]],
    unit: str,
) -> str:
    """Bars per group (x) and series (colour), each with a whisker from low to high; 0 is drawn.

    `groups` are (key, label) pairs; `bars` maps (group key, series key) to (value, low, high).
    """
    # Room below the plot for the slanted group labels ("circuit-breaker vs sidecar !").
    label_room = 110
    height = _HEIGHT + label_room
    parts = _svg_open(title, height)
    if not bars:
        parts.append(f'<text x="{_LEFT}" y="{height / 2}">no data (no comparison or no mesh sampling)</text></svg>')
        return "\n".join(parts)
    low = min(0.0, *(v[1] for v in bars.values()), *(v[0] for v in bars.values()))
    high = max(0.0, *(v[2] for v in bars.values()), *(v[0] for v in bars.values()))
    if high == low:
        high = low + 1.0
    span = high - low
    low, high = low - 0.05 * span * (low < 0), high + 0.05 * span
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, height - _TOP - label_room

    def y_of(value: float) -> float:
        return _TOP + plot_h * (1 - (value - low) / (high - low))

    for tick in (t for t in nice_ticks(low, high) if low - 1e-9 <= t <= high + 1e-9):
        y = y_of(tick)
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    zero = y_of(0.0)
    parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#333"/>')
    group_w = plot_w / max(len(groups), 1)
    bar_w = group_w * 0.8 / max(len(series_keys), 1)
    for g, (group, group_label) in enumerate(groups):
        x0 = _LEFT + g * group_w + group_w * 0.1
        label_x = _LEFT + g * group_w + group_w / 2
        label_y = _TOP + plot_h + 12
        parts.append(
            f'<text x="{label_x:.1f}" y="{label_y}" text-anchor="end" '
            f'transform="rotate(-30 {label_x:.1f} {label_y})">{_escape(group_label)}</text>'
        )
        for s, key in enumerate(series_keys):
            found = bars.get((group, key))
            if found is None:
                continue
            value, whisker_low, whisker_high = found
            x = x0 + s * bar_w
            top, bottom = sorted((y_of(value), zero))
            colour = PALETTE[s % len(PALETTE)]
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar_w * 0.9:.1f}" height="{max(bottom - top, 0.5):.1f}" '
                f'fill="{colour}"><title>{_escape(group_label)} at {_escape(series_labels[s])}: '
                f"{format_value(value)} {unit} [{format_value(whisker_low)}, {format_value(whisker_high)}]"
                "</title></rect>"
            )
            centre = x + bar_w * 0.45
            y_low, y_high = y_of(whisker_low), y_of(whisker_high)
            parts.append(
                f'<line x1="{centre:.1f}" x2="{centre:.1f}" y1="{y_low:.1f}" y2="{y_high:.1f}" stroke="#000"/>'
                f'<line x1="{centre - 3:.1f}" x2="{centre + 3:.1f}" y1="{y_low:.1f}" y2="{y_low:.1f}" stroke="#000"/>'
                f'<line x1="{centre - 3:.1f}" x2="{centre + 3:.1f}" y1="{y_high:.1f}" y2="{y_high:.1f}" stroke="#000"/>'
            )
    parts.extend(_legend([(label, PALETTE[s % len(PALETTE)]) for s, label in enumerate(series_labels)]))
    parts.append("</svg>")
    return "\n".join(parts)
