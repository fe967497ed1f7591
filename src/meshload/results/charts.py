"""Every chart of meshload's reports, drawn here as inline SVG: one palette, one set of axes (linear,
logarithmic, and the "nines" axis of latency percentiles), one legend, one way to say "no data".

Why not a plotting library: a report must open anywhere, offline, as one file, and a study folder
holds dozens of them. matplotlib's SVG embeds every glyph (tens of kilobytes per chart, and a heavy
import for every run); plotly, Bokeh and Vega draw with JavaScript that must be inlined (megabytes)
or fetched (network). The charts meshload needs are lines and bars with whiskers: a few kilobytes of
SVG each, no script, nothing fetched.

A chart is built on a `Canvas` (title, plot area, legend in the right margin) with `Axis` scales;
`line_chart` and `bar_chart` cover the reports' charts, and return `Markup` ready for a template.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup, escape

from .histogram import LatencyHistogram

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 160, 28, 44
#: Room below the plot for slanted category labels ("circuit-breaker vs sidecar !").
CATEGORY_LABEL_ROOM = 110
#: Tableau 10: distinct, colour-blind aware; series take them in order.
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
#: Colours that mean the same in every report.
BLUE, RED, GREY = PALETTE[0], PALETTE[2], "#8c8c8c"
#: The deepest percentile a spectrum draws: 99.999% (5 nines), or what the sample count supports.
SPECTRUM_MAX_NINES = 5
SPECTRUM_POINTS_PER_DECADE = 24


# -- numbers -------------------------------------------------------------------------------------


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values (steps of 1, 2, 2.5 or 5 × 10ⁿ) covering [low, high]: the
    first tick is at or below `low`, the last at or above `high`."""
    if high <= low:
        high = low + 1.0
    raw_step = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    first = math.floor(low / step) * step
    ticks = [round(first, 10)]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def format_value(value: float | None, digits: int = 3) -> str:
    """A figure with about `digits` significant digits, for tables and tooltips ("–" for none)."""
    if value is None or not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(digits - 1 - magnitude, 0)
    return f"{value:.{decimals}f}"


def _tick_label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"


# -- the nines axis of latency percentiles --------------------------------------------------------


def nines(percentile: float) -> float:
    """A percentile's place on the nines axis: -log10(1 - p), so 90% sits at 1, 99% at 2, 99.9% at 3:
    the tail gets as much room as the body (HdrHistogram's percentile plots)."""
    return -math.log10(1.0 - min(percentile, 100.0 * (1.0 - 10.0**-SPECTRUM_MAX_NINES)) / 100.0)


def spectrum_percentiles(total_count: int) -> list[float]:
    """Percentiles evenly spaced on the nines axis, as deep as `total_count` samples support."""
    depth = min(SPECTRUM_MAX_NINES, max(math.log10(max(total_count, 1)), 1.0))
    exponents = np.linspace(0.0, depth, int(depth * SPECTRUM_POINTS_PER_DECADE) + 1)
    return [100.0 * (1.0 - 10.0 ** (-e)) for e in exponents]


# -- axes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """A scale from data values to [0, 1], with labelled ticks."""

    label: str
    low: float
    high: float
    ticks: tuple[tuple[float, str], ...]
    log: bool = False

    def fraction(self, value: float) -> float:
        if self.log:
            return (math.log10(value) - math.log10(self.low)) / (math.log10(self.high) - math.log10(self.low))
        return (value - self.low) / (self.high - self.low)


def linear_axis(label: str, values: Sequence[float], *, from_zero: bool = True, count: int = 5) -> Axis:
    """Round ticks around `values` (and 0, unless `from_zero` is False)."""
    low = min([*values, 0.0]) if from_zero else min(values)
    high = max([*values, 0.0]) if from_zero else max(values)
    ticks = nice_ticks(low, high if high > low else low + 1.0, count)
    return Axis(label, ticks[0], ticks[-1], tuple((t, _tick_label(t)) for t in ticks))


def log_axis(label: str, values: Sequence[float]) -> Axis:
    """A log scale from the 1-2-5 value just below the smallest (positive) value to the one just above
    the largest, ticked at every 1-2-5 value between: a fraction of a millisecond stays visible next
    to a slow tail."""
    positive = [v for v in values if v > 0] or [1.0]
    low = max(v for v in _one_two_five(min(positive)) if v <= min(positive))
    high = min(v for v in _one_two_five(max(positive)) if v >= max(positive))
    if high <= low:
        high = low * 10
    ticks = [
        (step * 10.0**decade, f"{step * 10.0**decade:g}")
        for decade in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        for step in (1, 2, 5)
        if low * 0.999 <= step * 10.0**decade <= high * 1.001
    ]
    return Axis(label, low, high, tuple(ticks), log=True)


def _one_two_five(value: float) -> list[float]:
    decade = math.floor(math.log10(value))
    return [step * 10.0**d for d in (decade - 1, decade, decade + 1) for step in (1, 2, 5)]


def nines_axis(depth: float) -> Axis:
    """The percentile axis, in nines, from p0 to `depth` nines (ticks p0, p90, p99, p99.9, ...)."""
    whole = max(1, math.ceil(depth - 1e-9))
    ticks = [(float(n), f"p{100.0 * (1.0 - 10.0**-n):g}") for n in range(whole + 1)]
    return Axis("percentile", 0.0, float(whole), tuple(ticks))


# -- drawing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line: its name (legend), colour and points."""

    name: str
    colour: str
    xs: Sequence[float]
    ys: Sequence[float]


class Canvas:
    """An SVG chart under construction: a title above, the plot area, a legend in the right margin."""

    def __init__(self, title: str, *, height: int = HEIGHT, bottom: int = BOTTOM) -> None:
        self.title = title
        self.height = height
        self.plot_left, self.plot_top = LEFT, TOP
        self.plot_width, self.plot_height = WIDTH - LEFT - RIGHT, height - TOP - bottom
        self._parts: list[str] = []

    def x(self, axis: Axis, value: float) -> float:
        return self.plot_left + self.plot_width * axis.fraction(value)

    def y(self, axis: Axis, value: float) -> float:
        return self.plot_top + self.plot_height * (1.0 - axis.fraction(value))

    def add(self, svg: str) -> None:
        self._parts.append(svg)

    def axes(self, x_axis: Axis | None, y_axis: Axis) -> None:
        """Grid lines with tick labels, and the axis labels."""
        left, top, right = self.plot_left, self.plot_top, self.plot_left + self.plot_width
        bottom = top + self.plot_height
        self.add('<g class="grid" stroke="#e3e3e3">')
        for value, label in y_axis.ticks:
            y = self.y(y_axis, value)
            self.add(
                f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" stroke="none">{escape(label)}</text>'
            )
        if x_axis is not None:
            for value, label in x_axis.ticks:
                x = self.x(x_axis, value)
                self.add(
                    f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}"/>'
                    f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" stroke="none">{escape(label)}</text>'
                )
        self.add("</g>")
        middle = top + self.plot_height / 2
        if x_axis is not None:
            self.add(
                f'<text x="{left + self.plot_width / 2}" y="{self.height - 6}" text-anchor="middle">'
                f"{escape(x_axis.label)}</text>"
            )
        self.add(
            f'<text x="14" y="{middle:.1f}" transform="rotate(-90 14 {middle:.1f})" text-anchor="middle">'
            f"{escape(y_axis.label)}</text>"
        )

    def line(self, series: Series, x_axis: Axis, y_axis: Axis) -> None:
        points = " ".join(
            f"{self.x(x_axis, x):.1f},{self.y(y_axis, y):.1f}" for x, y in zip(series.xs, series.ys, strict=True)
        )
        self.add(
            f'<polyline class="series" data-series="{escape(series.name)}" fill="none" stroke="{series.colour}" '
            f'stroke-width="2" points="{points}"><title>{escape(series.name)}</title></polyline>'
        )

    def whisker(self, x: float, y_low: float, y_high: float, colour: str = "#000") -> None:
        """A vertical interval with caps (a confidence interval, a min-to-max range)."""
        self.add(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_low:.1f}" y2="{y_high:.1f}" stroke="{colour}"/>'
            f'<line x1="{x - 3:.1f}" x2="{x + 3:.1f}" y1="{y_low:.1f}" y2="{y_low:.1f}" stroke="{colour}"/>'
            f'<line x1="{x - 3:.1f}" x2="{x + 3:.1f}" y1="{y_high:.1f}" y2="{y_high:.1f}" stroke="{colour}"/>'
        )

    def legend(self, entries: Sequence[tuple[str, str]]) -> None:
        """A colour swatch and a label per (label, colour), stacked in the right margin."""
        x = self.plot_left + self.plot_width + 12
        for index, (label, colour) in enumerate(entries):
            y = self.plot_top + 14 * index + 8
            self.add(
                f'<rect class="swatch" x="{x}" y="{y - 8}" width="10" height="10" fill="{colour}"/>'
                f'<text x="{x + 14}" y="{y + 1}">{escape(label)}</text>'
            )

    def svg(self, message: str | None = None) -> Markup:
        """The finished chart; with `message` (and nothing drawn), a chart that says why it is empty."""
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {self.height}" '
            f'width="{WIDTH}" height="{self.height}" font-family="sans-serif" font-size="11">'
            f"<title>{escape(self.title)}</title>"
            f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(self.title)}</text>'
        )
        if message is not None:
            body = (
                f'<text class="empty" x="{WIDTH / 2}" y="{self.height / 2}" text-anchor="middle">'
                f"{escape(message)}</text>"
            )
        else:
            body = "".join(self._parts)
        return Markup(head + body + "</svg>")


def spectrum_series(name: str, colour: str, histogram: LatencyHistogram) -> Series:
    """One histogram's latency (ms) by percentile, on the nines axis, as deep as its count supports
    (at least a microsecond, so a logarithmic axis can show every point)."""
    percentiles = spectrum_percentiles(histogram.total_count)
    values = histogram.values_at_percentiles(percentiles)
    return Series(name, colour, [nines(p) for p in percentiles], [max(values[p], 1) / 1000.0 for p in percentiles])


def latency_by_percentile(
    series: Sequence[Series], *, title: str, y_log: bool = False, empty: str = "no data"
) -> Markup:
    """Latency by percentile (`spectrum_series`), the nines axis as deep as the deepest line."""
    deepest = max([1.0, *(s.xs[-1] for s in series if len(s.xs))])
    y_label = "latency (ms, log scale)" if y_log else "latency (ms)"
    return line_chart(series, title=title, x_axis=nines_axis(deepest), y_label=y_label, y_log=y_log, empty=empty)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_axis: Axis | None = None,
    x_label: str = "seconds after start (warm-up included)",
    y_label: str,
    y_log: bool = False,
    empty: str = "no data",
) -> Markup:
    """Lines over a common x axis (by default linear over the data); y linear from 0, or logarithmic.
    Several lines may share a name (pieces of one series with gaps between): the legend shows it
    once. Without any point, the chart says `empty`."""
    drawn = [s for s in series if len(s.xs)]
    canvas = Canvas(title)
    if not drawn:
        return canvas.svg(empty)
    xs = [float(x) for s in drawn for x in s.xs]
    ys = [float(y) for s in drawn for y in s.ys]
    if x_axis is None:
        x_axis = linear_axis(x_label, xs, from_zero=False)
    y_axis = log_axis(y_label, ys) if y_log else linear_axis(y_label, ys)
    canvas.axes(x_axis, y_axis)
    for s in drawn:
        canvas.line(s, x_axis, y_axis)
    canvas.legend(list(dict.fromkeys((s.name, s.colour) for s in drawn)))
    return canvas.svg()


#: The smallest lag drawn on a logarithmic axis: the histograms' resolution, 1 µs.
LAG_FLOOR_MS = 0.001


def schedule_lag_chart(series: Sequence[Series], *, title: str, x_label: str, empty: str = "no data") -> Markup:
    """Schedule lag (actual send - planned instant) per second on a logarithmic axis, so a quiet
    generator's microseconds and a stall's hundreds of milliseconds show on one chart."""
    floored = [Series(s.name, s.colour, s.xs, [max(y, LAG_FLOOR_MS) for y in s.ys]) for s in series]
    return line_chart(
        floored, title=title, x_label=x_label, y_label="schedule lag (ms, log scale)", y_log=True, empty=empty
    )


@dataclass(frozen=True)
class Bar:
    """One bar: its value and the whisker around it (an interval, or a range)."""

    value: float
    low: float
    high: float


def bar_chart(
    *,
    title: str,
    groups: Sequence[tuple[str, str]],
    series: Sequence[tuple[float, str]],
    bars: dict[tuple[str, float], Bar],
    unit: str,
    empty: str,
) -> Markup:
    """Bars per group (x, slanted labels) and series (colour), each with its whisker; 0 is drawn.

    `groups` and `series` are (key, label) pairs; `bars` maps (group key, series key) to a bar."""
    canvas = Canvas(title, height=HEIGHT + CATEGORY_LABEL_ROOM, bottom=CATEGORY_LABEL_ROOM)
    if not bars:
        return canvas.svg(empty)
    values = [v for bar in bars.values() for v in (bar.value, bar.low, bar.high)]
    span = (max([*values, 0.0]) - min([*values, 0.0])) or 1.0
    # A little room beyond the longest whisker, so it does not touch the frame.
    padded = [*values, max([*values, 0.0]) + 0.05 * span, min([*values, 0.0]) - 0.05 * span * (min(values) < 0)]
    y_axis = linear_axis(unit, padded)
    canvas.axes(None, y_axis)
    zero = canvas.y(y_axis, 0.0)
    right = canvas.plot_left + canvas.plot_width
    canvas.add(
        f'<line class="zero" x1="{canvas.plot_left}" x2="{right}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#333"/>'
    )
    group_width = canvas.plot_width / max(len(groups), 1)
    bar_width = group_width * 0.8 / max(len(series), 1)
    label_y = canvas.plot_top + canvas.plot_height + 12
    for g, (group, group_label) in enumerate(groups):
        centre = canvas.plot_left + (g + 0.5) * group_width
        canvas.add(
            f'<text x="{centre:.1f}" y="{label_y}" text-anchor="end" '
            f'transform="rotate(-30 {centre:.1f} {label_y})">{escape(group_label)}</text>'
        )
        for s, (key, series_label) in enumerate(series):
            bar = bars.get((group, key))
            if bar is None:
                continue
            x = canvas.plot_left + g * group_width + group_width * 0.1 + s * bar_width
            top, bottom = sorted((canvas.y(y_axis, bar.value), zero))
            tooltip = (
                f"{group_label} at {series_label}: {format_value(bar.value)} {unit} "
                f"[{format_value(bar.low)}, {format_value(bar.high)}]"
            )
            canvas.add(
                f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{bar_width * 0.9:.1f}" '
                f'height="{max(bottom - top, 0.5):.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                f"<title>{escape(tooltip)}</title></rect>"
            )
            canvas.whisker(x + bar_width * 0.45, canvas.y(y_axis, bar.low), canvas.y(y_axis, bar.high))
    canvas.legend([(label, PALETTE[s % len(PALETTE)]) for s, (_, label) in enumerate(series)])
    return canvas.svg()
