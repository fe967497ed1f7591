"""Trend lines over a long run's minutes, and the rule that flags a mesh component whose memory keeps
growing (a leaking sidecar) — what a 30-second run cannot show.

A trend is the least-squares line through a series' per-minute values (x in minutes from the first
point). Memory is flagged as growing when, over at least `MIN_MINUTES` minutes:

- the line rises by more than `GROWTH_LIMIT` (10%) of its own starting value over the span, and
- the line explains the series (R² at least `MIN_R2`, 0.5): a steady climb, not noise or one step.

Both conditions are printed with the figures (slope in MB per minute, growth, R²), so a reader can
check the verdict by eye on the chart beside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from .run_result import ComponentUsage, MeshMinute, MeshUsage, MinutePoint

#: A memory trend is judged only over this many minutes or more.
MIN_MINUTES = 5
#: Growth over the span, as a fraction of the line's starting value, beyond which memory is flagged.
GROWTH_LIMIT = 0.10
#: The line must explain at least this much of the series' variance.
MIN_R2 = 0.5
#: Mesh components whose per-minute CPU and memory are kept (those present in the run).
COMPONENTS = ("sidecar", "ingress_gateway", "control_plane", "applications")


@dataclass
class TrendLine:
    """The least-squares line of one per-minute series."""

    series: str  # e.g. "sidecar memory (MB)", "p99 (ms)"
    slope_per_minute: float
    start: float  # the line's value at the first minute
    end: float  # ... and at the last
    r2: float
    minutes: int
    flagged: bool = False  # memory that keeps growing (see the module's rule)

    @property
    def growth_fraction(self) -> float:
        return (self.end - self.start) / self.start if self.start > 0 else 0.0

    def describe(self) -> str:
        verdict = " — GROWING (flagged)" if self.flagged else ""
        return (
            f"{self.series}: {self.slope_per_minute:+.3g}/min over {self.minutes} min, "
            f"{self.start:.3g} -> {self.end:.3g} ({self.growth_fraction * 100:+.1f}%), R² {self.r2:.2f}{verdict}"
        )


def fit_trend(series: str, xs: Sequence[float], ys: Sequence[float]) -> TrendLine | None:
    """The least-squares line through (xs, ys); None with fewer than two distinct xs."""
    count = len(xs)
    if count < 2:
        return None
    mean_x = sum(xs) / count
    mean_y = sum(ys) / count
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - mean_y) ** 2 for y in ys)
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 0.0
    return TrendLine(
        series=series,
        slope_per_minute=slope,
        start=intercept + slope * xs[0],
        end=intercept + slope * xs[-1],
        r2=r2,
        minutes=count,
    )


def memory_trend(series: str, xs: Sequence[float], mem_mb: Sequence[float]) -> TrendLine | None:
    """The memory series' trend, flagged by the module's rule."""
    trend = fit_trend(series, xs, mem_mb)
    if trend is not None:
        trend.flagged = trend.minutes >= MIN_MINUTES and trend.growth_fraction > GROWTH_LIMIT and trend.r2 >= MIN_R2
    return trend


def run_trends(minutes: Sequence[MinutePoint], mesh_minutes: Sequence[MeshMinute]) -> list[TrendLine]:
    """Trends of a run: p99 latency per measured minute, and each mesh component's CPU and memory."""
    trends: list[TrendLine] = []
    measured = [m for m in minutes if not m.warmup]
    latency = fit_trend("p99 (ms)", [m.offset_s / 60.0 for m in measured], [m.p99_ms for m in measured])
    if latency is not None:
        trends.append(latency)
    for component in COMPONENTS:
        points = [m for m in mesh_minutes if component in m.mem_mb]
        xs = [m.offset_s / 60.0 for m in points]
        cpu = fit_trend(f"{component} CPU (mcores)", xs, [m.cpu_mcores[component] for m in points])
        mem = memory_trend(f"{component} memory (MB)", xs, [m.mem_mb[component] for m in points])
        trends += [t for t in (cpu, mem) if t is not None]
    return trends


def mesh_minute(offset_s: float, usage: MeshUsage) -> MeshMinute:
    """One window's mesh usage as a per-minute point (components present only)."""
    present = {name: getattr(usage, name) for name in COMPONENTS if getattr(usage, name).count > 0}
    return MeshMinute(
        offset_s=offset_s,
        cpu_mcores={name: part.cpu_mcores for name, part in present.items()},
        mem_mb={name: part.mem_mb for name, part in present.items()},
    )


def combine_usages(windows: Sequence[tuple[MeshUsage, float]]) -> MeshUsage | None:
    """The run's mesh usage from its per-minute windows (usage, length in seconds): averages weighted
    by length, maxima of maxima, replica counts summed; identity fields from the last window."""
    if not windows:
        return None
    if len(windows) == 1:
        return windows[0][0]  # a run shorter than a window: its one sampler's figures, as they are
    total_s = sum(length for _, length in windows) or 1.0
    last = windows[-1][0]

    def combined(name: str) -> ComponentUsage:
        pieces = [(getattr(usage, name), length) for usage, length in windows]
        return ComponentUsage(
            count=max(part.count for part, _ in pieces),
            cpu_mcores=sum(part.cpu_mcores * length for part, length in pieces) / total_s,
            mem_mb=sum(part.mem_mb * length for part, length in pieces) / total_s,
            cpu_mcores_max=max(part.cpu_mcores_max for part, _ in pieces),
            mem_mb_max=max(part.mem_mb_max for part, _ in pieces),
        )

    # Replica counts are each window's own (counted from its start): the run's are their sums.
    replicas: dict[str, dict[str, int]] = {}
    for usage, _ in windows:
        for service, counts in usage.replicas.items():
            total = replicas.setdefault(service, {})
            for replica, count in counts.items():
                total[replica] = total.get(replica, 0) + count
    return dataclasses.replace(
        last,
        profile=dict(last.profile),
        replicas=replicas,
        sidecar=combined("sidecar"),
        ingress_gateway=combined("ingress_gateway"),
        control_plane=combined("control_plane"),
        applications=combined("applications"),
    )
