"""The run's `report.html`: one self-contained page (inline CSS, charts as inline SVG drawn here), so
it opens anywhere, offline, and can be mailed or archived as a single file.

Sections: validity (first, in a box that cannot be missed), summary figures, the percentile spectrum
(corrected vs uncorrected on HdrHistogram's log "1/(1-percentile)" axis), rate and latency over time,
per-worker table, the mesh's resource use, and the plan.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import jinja2
import numpy as np
from markupsafe import escape

from ..scenarios.plan import ClosedLoop
from .aggregate import failed_requests
from .chart_ticks import nice_ticks
from .histogram import REPORTED_PERCENTILES, LatencyHistogram, percentile_key
from .run_result import RunResult
from .smp import rfc3339

#: Deepest percentile drawn: 99.999% (1/(1-p) = 10^5), or what the sample count supports.
SPECTRUM_MAX_NINES = 5
SPECTRUM_POINTS_PER_DECADE = 24
CHART_WIDTH = 720
CHART_HEIGHT = 260
_MARGIN = {"left": 64, "right": 16, "top": 16, "bottom": 40}
COLORS = {"corrected": "#c0392b", "uncorrected": "#2471a3", "sent": "#7f8c8d", "p50": "#2471a3", "p99": "#c0392b"}


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    xs: Sequence[float]
    ys: Sequence[float]


def _format_tick(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_ticks: Sequence[tuple[float, str]] | None = None,
) -> str:
    """An SVG line chart (linear axes; pass transformed xs and labelled `x_ticks` for a log axis)."""
    drawn = [s for s in series if len(s.xs)]
    plot_w = CHART_WIDTH - _MARGIN["left"] - _MARGIN["right"]
    plot_h = CHART_HEIGHT - _MARGIN["top"] - _MARGIN["bottom"]
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" '
        f'width="{CHART_WIDTH}" height="{CHART_HEIGHT}">',
        f"<title>{escape(title)}</title>",
    ]
    if not drawn:
        parts.append(f'<text x="{CHART_WIDTH / 2}" y="{CHART_HEIGHT / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    all_x = np.concatenate([np.asarray(s.xs, dtype=float) for s in drawn])
    all_y = np.concatenate([np.asarray(s.ys, dtype=float) for s in drawn])
    x_low, x_high = float(all_x.min()), float(all_x.max())
    if x_ticks:
        x_low = min(x_low, *(t for t, _ in x_ticks))
        x_high = max(x_high, *(t for t, _ in x_ticks))
    if x_high <= x_low:
        x_high = x_low + 1.0
    y_ticks = nice_ticks(0.0, float(all_y.max()) if all_y.max() > 0 else 1.0)
    y_high = y_ticks[-1]

    def px(x: float) -> float:
        return _MARGIN["left"] + (x - x_low) / (x_high - x_low) * plot_w

    def py(y: float) -> float:
        return _MARGIN["top"] + plot_h - (y / y_high) * plot_h

    parts.append('<g class="grid" stroke="#ddd" stroke-width="1" font-size="11" fill="#444">')
    for tick in y_ticks:
        y = py(tick)
        parts.append(f'<line x1="{_MARGIN["left"]}" y1="{y:.1f}" x2="{CHART_WIDTH - _MARGIN["right"]}" y2="{y:.1f}"/>')
        label_x = _MARGIN["left"] - 6
        parts.append(f'<text x="{label_x}" y="{y + 4:.1f}" text-anchor="end" stroke="none">{_format_tick(tick)}</text>')
    labelled = x_ticks if x_ticks else [(t, _format_tick(t)) for t in nice_ticks(x_low, x_high) if x_low <= t <= x_high]
    for tick, label in labelled:
        x = px(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{_MARGIN["top"]}" x2="{x:.1f}" y2="{_MARGIN["top"] + plot_h}"/>')
        label_y = _MARGIN["top"] + plot_h + 16
        parts.append(f'<text x="{x:.1f}" y="{label_y}" text-anchor="middle" stroke="none">{escape(label)}</text>')
    parts.append("</g>")
    centre_x, centre_y = _MARGIN["left"] + plot_w / 2, _MARGIN["top"] + plot_h / 2
    parts.append(
        f'<text x="{centre_x}" y="{CHART_HEIGHT - 4}" text-anchor="middle" font-size="12">{escape(x_label)}</text>'
        f'<text transform="translate(14 {centre_y}) rotate(-90)" text-anchor="middle" font-size="12">'
        f"{escape(y_label)}</text>"
    )
    for index, s in enumerate(drawn):
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(s.xs, s.ys, strict=True))
        parts.append(
            f'<polyline class="series" data-series="{escape(s.name)}" fill="none" stroke="{s.color}" '
            f'stroke-width="2" points="{points}"/>'
        )
        legend_y = _MARGIN["top"] + 14 + 16 * index
        parts.append(
            f'<rect x="{_MARGIN["left"] + 10}" y="{legend_y - 9}" width="12" height="3" fill="{s.color}"/>'
            f'<text x="{_MARGIN["left"] + 28}" y="{legend_y}" font-size="12">{escape(s.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def spectrum_percentiles(total_count: int) -> list[float]:
    """Percentiles for the spectrum, evenly spaced in log10(1/(1-p)), as deep as the count supports."""
    nines = min(SPECTRUM_MAX_NINES, max(math.log10(max(total_count, 1)), 1.0))
    exponents = np.linspace(0.0, nines, int(nines * SPECTRUM_POINTS_PER_DECADE) + 1)
    return [100.0 * (1.0 - 10.0 ** (-e)) for e in exponents]


def percentile_spectrum_chart(corrected: LatencyHistogram, uncorrected: LatencyHistogram) -> str:
    """Latency by percentile, HdrHistogram style: x is log10(1/(1-percentile))."""
    series = []
    deepest = 1.0
    for name, histogram in (("corrected", corrected), ("uncorrected", uncorrected)):
        if histogram.total_count == 0:
            continue
        percentiles = spectrum_percentiles(histogram.total_count)
        values = histogram.values_at_percentiles(percentiles)
        xs = [-math.log10(1.0 - p / 100.0) if p < 100.0 else SPECTRUM_MAX_NINES for p in percentiles]
        deepest = max(deepest, xs[-1])
        series.append(Series(name, COLORS[name], xs, [values[p] / 1000.0 for p in percentiles]))
    labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
    ticks = [(float(n), labels[n]) for n in range(math.ceil(deepest - 1e-9) + 1)]
    return line_chart(
        series, title="Latency by percentile", x_label="percentile", y_label="latency (ms)", x_ticks=ticks
    )


def rate_chart(result: RunResult) -> str:
    xs = [p.offset_s for p in result.timeseries]
    return line_chart(
        [
            Series("completed / s", COLORS["corrected"], xs, [p.rate for p in result.timeseries]),
            Series("sent / s", COLORS["sent"], xs, [p.sent_rate for p in result.timeseries]),
        ],
        title="Rate over time",
        x_label="seconds after start (warm-up included)",
        y_label="requests / s",
    )


def latency_chart(result: RunResult) -> str:
    xs = [p.offset_s for p in result.timeseries]
    return line_chart(
        [
            Series("p50", COLORS["p50"], xs, [p.p50_ms for p in result.timeseries]),
            Series("p99", COLORS["p99"], xs, [p.p99_ms for p in result.timeseries]),
        ],
        title="Corrected latency over time",
        x_label="seconds after start (warm-up included)",
        y_label="latency (ms)",
    )


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("meshload.results", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template("report.html.j2")


def load_model_text(result: RunResult) -> str:
    """One sentence on how the load was generated, and so what "corrected" means in this report."""
    load = result.plan.load
    if isinstance(load, ClosedLoop):
        think = f", {load.think_time_s:g} s think time" if load.think_time_s else ""
        return (
            f"Closed loop: {load.concurrency} clients{think}, each sending when its previous request answered. "
            "Latencies are measured from the actual send, so they are not corrected for coordinated omission "
            "(corrected and uncorrected are the same)."
        )
    stages = f", {len(load.stages)} stages" if load.stages else ""
    return (
        f"Open loop: {load.rate:g} requests/s, {load.arrival} arrivals{stages}, all workers together. "
        "Corrected latency is measured from each request's planned instant."
    )


def render_report(result: RunResult) -> str:
    """The whole page as a string."""
    percentiles = [percentile_key(p) for p in REPORTED_PERCENTILES]
    mesh = dataclasses.asdict(result.mesh) if result.mesh is not None else None
    return _template().render(
        result=result,
        started=rfc3339(result.started_unix_ms) if result.started_unix_ms else "",
        percentiles=percentiles,
        corrected_ms=result.corrected.percentiles_ms(),
        uncorrected_ms=result.uncorrected.percentiles_ms(),
        lag_ms=result.lag.percentiles_ms(),
        mean_ms=result.corrected.mean_us() / 1000.0,
        max_ms=result.corrected.max_us / 1000.0,
        failed=failed_requests(result.status_codes, result.errors),
        spectrum_svg=percentile_spectrum_chart(result.corrected, result.uncorrected),
        rate_svg=rate_chart(result),
        latency_svg=latency_chart(result),
        mesh=mesh,
        plan_json=json.dumps(result.plan.model_dump(mode="json"), indent=2),
        environment_json=json.dumps(result.environment, indent=2, default=str),
        load_model=load_model_text(result),
        by_name={
            name: {
                "summary": summary,
                "corrected_ms": summary.corrected.percentiles_ms(),
                "uncorrected_ms": summary.uncorrected.percentiles_ms(),
            }
            for name, summary in result.by_name.items()
        },
    )
