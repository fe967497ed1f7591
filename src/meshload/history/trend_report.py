"""`trend.html`: a plan's runs over time, one self-contained page (inline CSS and SVG, nothing fetched).

It shows p50, p99, the error rate and the proxy CPU of every run with each run's 95% interval, marks
the runs the regression rule (`trend.py`) finds significantly worse than the runs before them, says
how that rule decides, and lists every run with a link to its own report.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

from ..results.charts import format_value
from .records import format_time
from .trend import TREND_METRICS, RegressionRule, TrendPoint
from .trend_chart import ChartPoint, State, interval_chart


@dataclass(frozen=True)
class Finding:
    """One metric of one marked run, in words for the summary."""

    run: str
    when: str
    metric: str
    value: str
    baseline: str
    change_pct: float | None
    p_value: float


def render_trend(
    points: Sequence[TrendPoint],
    *,
    plan: str,
    rule: RegressionRule,
    store: str,
    labels: Mapping[str, str] | None = None,
) -> str:
    """The whole page as a string (`points` oldest first, from `trend.assess_history`)."""
    charts = [
        interval_chart(
            [_chart_point(point, metric.key) for point in points],
            title=f"{metric.label} per run, with its 95% interval",
            y_label=f"{metric.label} ({metric.unit})",
        )
        for metric in TREND_METRICS
        if any(point.record.figure(metric.key) is not None for point in points)
    ]
    latest = points[-1] if points else None
    return _template().render(
        plan=plan,
        store=store,
        labels=dict(labels or {}),
        generated=format_time(int(time.time() * 1000)),
        points=points,
        newest_first=list(reversed(points)),
        rule=rule,
        metrics=TREND_METRICS,
        metric_labels=_metric_labels,
        charts=charts,
        findings=findings(points),
        latest=latest,
        when=format_time,
        fmt=format_value,
        report_link=_report_link,
    )


def findings(points: Sequence[TrendPoint]) -> list[Finding]:
    """Every marked metric of every run, oldest first."""
    found = []
    units = {metric.key: metric for metric in TREND_METRICS}
    for point in points:
        for key in point.worse_metrics():
            check = point.checks[key]
            value = point.record.figure(key)
            metric = units[key]
            change = None
            if value is not None and check.baseline_mean:
                change = 100.0 * (value - check.baseline_mean) / check.baseline_mean
            found.append(
                Finding(
                    run=point.record.key,
                    when=format_time(point.record.started_unix_ms),
                    metric=metric.label,
                    value=f"{format_value(value)} {metric.unit}",
                    baseline=f"{format_value(check.baseline_mean)} {metric.unit}",
                    change_pct=change,
                    p_value=check.p_value,
                )
            )
    return found


def _chart_point(point: TrendPoint, key: str) -> ChartPoint:
    record = point.record
    estimate = record.figures.get(key)
    check = point.checks.get(key)
    state: State
    if not record.valid:
        state = "invalid"
    elif check is None:
        state = "unjudged"
    else:
        state = "marked" if check.worse else "judged"
    value = estimate.value if estimate is not None else None
    tooltip = f"{record.key} at {format_time(record.started_unix_ms)}: {format_value(value)}"
    if estimate is not None and estimate.low is not None and estimate.high is not None:
        tooltip += f" [{format_value(estimate.low)}, {format_value(estimate.high)}]"
    if check is not None:
        tooltip += f"; marked above {format_value(check.threshold)} (p = {check.p_value:.2g})"
    return ChartPoint(
        label=time.strftime("%m-%d %H:%M", time.gmtime(record.started_unix_ms / 1000)),
        value=value,
        low=estimate.low if estimate is not None else None,
        high=estimate.high if estimate is not None else None,
        state=state,
        threshold=check.threshold if check is not None else None,
        plan_changed=point.note.startswith("plan changed"),
        tooltip=tooltip,
    )


def _metric_labels(keys: Sequence[str]) -> str:
    labels = {metric.key: metric.label for metric in TREND_METRICS}
    return ", ".join(labels.get(key, key) for key in keys)


def _report_link(location: str) -> str | None:
    """A link to the run's own report when its folder is on this machine."""
    if "://" in location:
        return location
    for name in ("report.html", "index.html"):
        path = Path(location) / name
        if path.is_file():
            return path.resolve().as_uri()
    return None


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("meshload.history", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("trend.html.j2")
