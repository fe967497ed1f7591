"""The trend of a plan's runs, and the rule that marks a run significantly worse than the runs before it.

The rule, for each run and each metric (p50, p99, error rate, proxy CPU):

1. **Baseline**: the `window` (10) runs before it that are valid and ran the same plan (same plan
   digest: a changed rate or target starts a new baseline). With fewer than `min_baseline` (5) such
   runs the run is not judged.
2. **Scale**: latencies and CPU are compared on a log scale (their noise is proportional to their
   size; a 10% slowdown is the same finding at 2 ms and at 200 ms), the error rate in percentage points.
3. **Uncertainty**: each run's own uncertainty `s` is its 95% interval's half-width / 1.96 on that
   scale (from the run's histogram: order statistics and a block bootstrap over its seconds, see
   `results.headline`; CPU has none). The baseline's n values have mean x̄ and variance v, which
   holds both the system's drift from run to run and each run's own noise.
4. **Test**: a new run x is expected within x̄ ± t·σ with σ² = v·(1 + 1/n) + max(s² − s̄², 0): the
   classic prediction interval of the next of n + 1 exchangeable values, widened when the run is
   noisier than the baseline's runs typically were (s̄² is their mean s², so a shorter run or one of
   fewer requests is not marked for its own noise). It is marked *worse* when
   T = (x − x̄)/σ exceeds the one-sided Student-t quantile with n − 1 degrees of freedom at α/k,
   where α is the false-alarm rate per run (1%) and k the number of metrics judged for that run
   (Bonferroni): a run of pure noise is marked with probability at most about α.

Only the "worse" direction is marked (slower, more errors, more CPU). An invalid run is shown but
neither judged nor used in a baseline. A lasting step is marked where it starts; once it fills the
window it is the new normal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np

from ..results.headline import Z_95, Estimate
from .records import HistoryRecord

Scale = Literal["log", "linear"]


@dataclass(frozen=True)
class TrendMetric:
    key: str  # a HistoryRecord figure
    label: str
    unit: str
    scale: Scale


TREND_METRICS: tuple[TrendMetric, ...] = (
    TrendMetric("p50_ms", "p50 latency (corrected)", "ms", "log"),
    TrendMetric("p99_ms", "p99 latency (corrected)", "ms", "log"),
    TrendMetric("error_rate_pct", "error rate", "%", "linear"),
    TrendMetric("proxy_cpu_mcores", "proxy CPU", "mcores", "log"),
)


@dataclass(frozen=True)
class RegressionRule:
    window: int = 10  # earlier runs in the baseline
    min_baseline: int = 5  # fewest earlier runs for a judgement
    false_alarm_rate: float = 0.01  # per run, all its metrics together

    def __post_init__(self) -> None:
        if self.min_baseline < 2 or self.window < self.min_baseline:
            raise ValueError("the baseline needs at least 2 runs, and the window at least min_baseline")
        if not 0.0 < self.false_alarm_rate < 1.0:
            raise ValueError("the false-alarm rate must be between 0 and 1")


@dataclass(frozen=True)
class Check:
    """One metric of one run against its baseline (on the metric's scale, see the module doc)."""

    statistic: float  # T = (x - mean) / sigma
    critical: float  # the t quantile T had to exceed
    p_value: float  # one-sided
    baseline_runs: int
    baseline_mean: float  # in the metric's unit
    threshold: float  # the value above which the run would have been marked, in the metric's unit
    alpha: float  # this metric's share of the false-alarm rate

    @property
    def worse(self) -> bool:
        return self.statistic > self.critical


@dataclass
class TrendPoint:
    """One run of the trend: its figures, and each metric's check (absent: not judged)."""

    record: HistoryRecord
    checks: dict[str, Check] = field(default_factory=dict)
    note: str = ""  # why the run was not judged, or that its plan changed

    @property
    def marked(self) -> bool:
        return any(check.worse for check in self.checks.values())

    def worse_metrics(self) -> list[str]:
        return [key for key, check in self.checks.items() if check.worse]


def assess_history(
    records: Sequence[HistoryRecord], rule: RegressionRule | None = None, metrics: Sequence[TrendMetric] = TREND_METRICS
) -> list[TrendPoint]:
    """Every run (oldest first) with its checks against the runs before it."""
    rule = rule or RegressionRule()
    points = []
    previous_digest: str | None = None
    for index, record in enumerate(records):
        point = TrendPoint(record)
        points.append(point)
        if previous_digest is not None and record.plan_digest != previous_digest:
            point.note = "plan changed: a new baseline starts here"
        previous_digest = record.plan_digest
        if not record.valid:
            point.note = "invalid run: not judged, not in any baseline"
            continue
        baseline = [
            earlier for earlier in records[:index] if earlier.valid and earlier.plan_digest == record.plan_digest
        ][-rule.window :]
        if len(baseline) < rule.min_baseline:
            point.note = point.note or f"{len(baseline)} earlier valid runs of this plan; {rule.min_baseline} needed"
            continue
        judged = [
            metric
            for metric in metrics
            if _on_scale(record.figures.get(metric.key), metric.scale) is not None
            and sum(_on_scale(r.figures.get(metric.key), metric.scale) is not None for r in baseline)
            >= rule.min_baseline
        ]
        for metric in judged:
            new = _on_scale(record.figures.get(metric.key), metric.scale)
            earlier = [_on_scale(r.figures.get(metric.key), metric.scale) for r in baseline]
            usable = [found for found in earlier if found is not None]
            assert new is not None
            point.checks[metric.key] = check_against_baseline(
                new[0],
                new[1],
                [value for value, _ in usable],
                [s for _, s in usable],
                alpha=rule.false_alarm_rate / len(judged),
                scale=metric.scale,
            )
    return points


def check_against_baseline(
    value: float,
    uncertainty: float,
    baseline_values: Sequence[float],
    baseline_uncertainties: Sequence[float],
    *,
    alpha: float,
    scale: Scale = "linear",
) -> Check:
    """The rule's test of one value (already on the metric's scale) with its uncertainty against a
    baseline of earlier values with theirs (see the module doc)."""
    from scipy.special import stdtr

    xs = np.asarray(baseline_values, dtype=np.float64)
    ss = np.asarray(baseline_uncertainties, dtype=np.float64)
    n = xs.size
    mean = float(xs.mean())
    variance = float(xs.var(ddof=1))
    sigma = math.sqrt(variance * (1.0 + 1.0 / n) + max(uncertainty**2 - float(np.mean(ss**2)), 0.0))
    critical = _t_quantile(1.0 - alpha, n - 1)
    if sigma > 0:
        statistic = (value - mean) / sigma
        p_value = float(stdtr(n - 1, -statistic))  # Student t's upper tail
    else:  # identical earlier runs with no uncertainty at all: any increase stands out
        statistic = math.inf if value > mean else 0.0
        p_value = 0.0 if value > mean else 1.0
    back = math.exp if scale == "log" else float
    return Check(
        statistic=statistic,
        critical=critical,
        p_value=p_value,
        baseline_runs=n,
        baseline_mean=back(mean),
        threshold=back(mean + critical * sigma),
        alpha=alpha,
    )


@lru_cache(maxsize=256)
def _t_quantile(probability: float, degrees_of_freedom: int) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(degrees_of_freedom, probability))


def _on_scale(estimate: Estimate | None, scale: Scale) -> tuple[float, float] | None:
    """(value, uncertainty) on the metric's scale, or None when the run has no usable figure."""
    if estimate is None or estimate.value is None or not math.isfinite(estimate.value):
        return None
    low, high = estimate.low, estimate.high
    if scale == "log":
        if estimate.value <= 0:
            return None
        if low is None or high is None or low <= 0:
            return math.log(estimate.value), 0.0
        return math.log(estimate.value), (math.log(high) - math.log(low)) / (2 * Z_95)
    if low is None or high is None:
        return estimate.value, 0.0
    return estimate.value, (high - low) / (2 * Z_95)
