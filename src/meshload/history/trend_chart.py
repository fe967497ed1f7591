"""The trend report's one kind of chart: a figure per run with its interval, and the regression mark.

Inline SVG, drawn here with nothing fetched, like the run and study reports' charts. Each run is a
dot with a whisker over its 95% interval; a run marked worse is a red triangle, an invalid run a
hollow grey dot; the dashed step line is the value above which each judged run would have been
marked, and a vertical dashed line shows where the plan changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from markupsafe import escape

from ..results.charts import nice_ticks

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 48
COLOURS = {"judged": "#2471a3", "unjudged": "#85a9c9", "marked": "#c0392b", "invalid": "#999999"}

State = Literal["judged", "unjudged", "marked", "invalid"]


@dataclass(frozen=True)
class ChartPoint:
    label: str  # x-axis label (the run's date)
    value: float | None
    low: float | None = None
    high: float | None = None
    state: State = "judged"
    threshold: float | None = None  # marked above this (judged runs only)
    plan_changed: bool = False  # a new baseline starts at this run
    tooltip: str = ""


def interval_chart(points: Sequence[ChartPoint], *, title: str, y_label: str) -> str:
    """The SVG of one metric over a plan's runs (oldest on the left)."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    drawn = [(index, point) for index, point in enumerate(points) if point.value is not None]
    if not drawn:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no run has this figure</text></svg>')
        return "".join(parts)
    shown = [v for _, p in drawn for v in (p.value, p.low, p.high, p.threshold) if v is not None]
    # The axis hugs the data (a 5% change must be visible at 200 ms); from 0 when the data come near it.
    low, high = min(shown), max(shown)
    ticks = nice_ticks(0.0 if low < 0.3 * high else low, high if high > low else low + 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points), 1)

    def x_of(index: float) -> float:
        return LEFT + step * (index + 0.5)

    def y_of(value: float) -> float:
        return TOP + plot_h * (1 - (value - ticks[0]) / (ticks[-1] - ticks[0]))

    for tick in ticks:
        y = y_of(tick)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    label_every = max(1, round(len(points) / 8))
    for index, point in enumerate(points):
        if index % label_every == 0:
            parts.append(
                f'<text x="{x_of(index):.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{escape(point.label)}</text>'
            )
        if point.plan_changed:
            x = x_of(index - 0.5)
            parts.append(
                f'<line class="plan-change" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
                'stroke="#555" stroke-dasharray="2 3"/>'
            )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">runs, oldest first</text>'
        f'<text x="14" y="{TOP + plot_h / 2}" transform="rotate(-90 14 {TOP + plot_h / 2})" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    for index, point in enumerate(points):
        if point.threshold is not None:
            y = y_of(point.threshold)
            parts.append(
                f'<line class="threshold" x1="{x_of(index - 0.45):.1f}" x2="{x_of(index + 0.45):.1f}" '
                f'y1="{y:.1f}" y2="{y:.1f}" stroke="#c0392b" stroke-dasharray="4 3" stroke-width="1"/>'
            )
    for index, point in drawn:
        assert point.value is not None
        colour = COLOURS[point.state]
        x, y = x_of(index), y_of(point.value)
        if point.low is not None and point.high is not None:
            y_low, y_high = y_of(point.low), y_of(point.high)
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_low:.1f}" y2="{y_high:.1f}" stroke="{colour}"/>'
                f'<line x1="{x - 3:.1f}" x2="{x + 3:.1f}" y1="{y_low:.1f}" y2="{y_low:.1f}" stroke="{colour}"/>'
                f'<line x1="{x - 3:.1f}" x2="{x + 3:.1f}" y1="{y_high:.1f}" y2="{y_high:.1f}" stroke="{colour}"/>'
            )
        tooltip = f"<title>{escape(point.tooltip)}</title>"
        if point.state == "marked":
            parts.append(
                f'<path class="point marked" d="M{x:.1f},{y - 7:.1f} L{x + 6:.1f},{y + 4:.1f} '
                f'L{x - 6:.1f},{y + 4:.1f} Z" fill="{colour}">{tooltip}</path>'
            )
        elif point.state == "invalid":
            parts.append(
                f'<circle class="point invalid" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="white" stroke="{colour}" '
                f'stroke-width="1.5">{tooltip}</circle>'
            )
        else:
            parts.append(
                f'<circle class="point {point.state}" cx="{x:.1f}" cy="{y:.1f}" r="3.5" '
                f'fill="{colour}">{tooltip}</circle>'
            )
    parts.append("</svg>")
    return "".join(parts)
