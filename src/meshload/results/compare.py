"""Comparison statistics: what a traffic-control function changes, with a confidence interval.

A study runs every function at every load level several times (repetitions). For one function at one
load level, each repetition gives one value of each metric (p50, p90, p99, p99.9, error rate, proxy
CPU per 1,000 rps, proxy memory). The function is compared with its baseline (`sidecar` for a
function, `none` for `sidecar`) by the difference of the two arms' means, and a 95% percentile
bootstrap interval of that difference (`bootstrap.py`). The cells and their metrics are
`cell_summary.py`'s.

`compare_study_paired` compares the same arms block by block instead (`paired`): each repetition at
a load level is a block in which every function ran once, minutes apart at most, so the function's
difference from its baseline inside a block is free of the drift between blocks; its paired t
interval holds its coverage from 3 blocks on (`bench/bench_study_statistics.py`). A study's verdicts
are the paired ones; the unpaired comparison remains for two independent studies (`compare_studies`,
`meshload compare A B`), and in study.json beside the paired one, to show what pairing gains.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..scenarios.study_arms import usual_baseline
from .bootstrap import CONFIDENCE, bootstrap_mean_difference
from .cell_summary import METRICS, CellSummary, Metric
from .histogram import LatencyHistogram
from .paired import PairedComparison, compare_paired

# -- comparisons -------------------------------------------------------------------------------


@dataclass
class Comparison:
    """One function against one baseline at one load level, for one metric."""

    function: str
    baseline: str
    rate: float
    metric: str
    unit: str
    baseline_mean: float
    function_mean: float
    change: float  # function - baseline, in `unit`
    low: float
    high: float
    significant: bool
    n_baseline: int
    n_function: int
    baseline_values: list[float] = field(default_factory=list)
    function_values: list[float] = field(default_factory=list)
    # An arm had no valid cell, so its invalid cells (the generator fell behind) were used: the
    # reports flag the comparison rather than drop it.
    uses_invalid_cells: bool = False

    @property
    def relative_change_pct(self) -> float | None:
        if self.baseline_mean == 0:
            return None
        return 100.0 * self.change / self.baseline_mean


def _metric_values(cells: Iterable[CellSummary], metric: str) -> list[float]:
    values = []
    for cell in cells:
        value = cell.metrics.get(metric)
        if value is not None and np.isfinite(value):
            values.append(float(value))
    return values


def compare_arms(
    baseline_cells: Sequence[CellSummary],
    function_cells: Sequence[CellSummary],
    *,
    function: str,
    baseline: str,
    rate: float,
    seed: int = 0,
    metrics: Sequence[Metric] = METRICS,
) -> list[Comparison]:
    """Every metric that both arms have, function arm against baseline arm (valid cells of an arm,
    or all of them, flagged, when none is valid)."""
    baseline_cells, base_fell_back = trusted_cells(baseline_cells)
    function_cells, function_fell_back = trusted_cells(function_cells)
    comparisons = []
    for index, metric in enumerate(metrics):
        base = _metric_values(baseline_cells, metric.key)
        treat = _metric_values(function_cells, metric.key)
        if not base or not treat:
            continue
        # One stream per metric so adding a metric does not move the others' intervals.
        estimate = bootstrap_mean_difference(base, treat, seed=_stream_seed(seed, function, rate, index))
        comparisons.append(
            Comparison(
                function=function,
                baseline=baseline,
                rate=rate,
                metric=metric.key,
                unit=metric.unit,
                baseline_mean=float(np.mean(base)),
                function_mean=float(np.mean(treat)),
                change=estimate.estimate,
                low=estimate.low,
                high=estimate.high,
                significant=estimate.significant,
                n_baseline=estimate.n_baseline,
                n_function=estimate.n_treated,
                baseline_values=base,
                function_values=treat,
                uses_invalid_cells=base_fell_back or function_fell_back,
            )
        )
    return comparisons


#: The fewest repetitions an arm needs for a bootstrap interval to have any width.
MIN_REPETITIONS_FOR_INTERVAL = 2


def trusted_cells(cells: Sequence[CellSummary]) -> tuple[list[CellSummary], bool]:
    """The cells an arm is measured by, and whether invalid ones had to be used (a flagged fallback).

    An invalid cell's latencies include the generator's own delay, so an arm uses only its valid
    cells when there are enough of them for an interval. Otherwise dropping them would leave a
    single value (no interval) or none (the function vanishes from the report) on a busy machine,
    so the arm keeps every cell and its comparisons are marked: never silently wrong, never
    silently missing.
    """
    valid = [cell for cell in cells if cell.valid]
    if len(valid) >= MIN_REPETITIONS_FOR_INTERVAL or len(valid) == len(cells):
        return valid, False
    return list(cells), True


def compare_study(cells: Sequence[CellSummary], baselines: dict[str, str | None], *, seed: int = 0) -> list[Comparison]:
    """Each function against its baseline at each load level where both were run.

    Cells whose run was invalid (the generator fell behind) are left out of an arm that has valid
    ones: their latencies describe the generator, not the mesh (see `trusted_cells`).
    """
    comparisons: list[Comparison] = []
    for function, baseline, rate, base, treated in _compared_arms(cells, baselines):
        comparisons.extend(compare_arms(base, treated, function=function, baseline=baseline, rate=rate, seed=seed))
    return comparisons


def compare_study_paired(
    cells: Sequence[CellSummary],
    baselines: dict[str, str | None],
    *,
    confidence: float = CONFIDENCE,
    metrics: Sequence[Metric] = METRICS,
) -> list[PairedComparison]:
    """Each function against its baseline at each load level, block by block (see `paired`): the
    drift between repetitions cancels, so the intervals are those of the function's own cost."""
    comparisons: list[PairedComparison] = []
    for function, baseline, rate, base, treated in _compared_arms(cells, baselines):
        comparisons.extend(
            compare_paired(
                base, treated, function=function, baseline=baseline, rate=rate, metrics=metrics, confidence=confidence
            )
        )
    return comparisons


def _compared_arms(
    cells: Sequence[CellSummary], baselines: dict[str, str | None]
) -> Iterator[tuple[str, str, float, list[CellSummary], list[CellSummary]]]:
    """(function, baseline, rate, baseline cells, function cells) of every comparison a study makes:
    functions in the plan's order (the order of `baselines`), then any only the cells know."""
    cells = [cell for cell in cells if not cell.not_supported]
    by_arm = _arms(cells)
    functions = list(dict.fromkeys([*baselines, *(cell.function for cell in cells)]))
    rates = sorted({cell.rate for cell in cells})
    for function in functions:
        baseline = baselines.get(function, usual_baseline(function))
        if baseline is None:
            continue
        for rate in rates:
            treated = by_arm.get((function, rate), [])
            base = by_arm.get((baseline, rate), [])
            if treated and base:
                yield function, baseline, rate, base, treated


def _stream_seed(seed: int, function: str, rate: float, metric_index: int) -> list[int]:
    # hash() of a str is salted per process; crc32 gives the same stream in every process.
    return [seed, zlib.crc32(function.encode()), round(rate * 1000), metric_index]


# -- two runs side by side (`meshload compare A B`) ----------------------------------------------


@dataclass
class PercentileDelta:
    """One percentile of run A and run B (corrected latency, ms)."""

    percentile: str
    a_ms: float
    b_ms: float

    @property
    def change_ms(self) -> float:
        return self.b_ms - self.a_ms

    @property
    def change_pct(self) -> float | None:
        return 100.0 * self.change_ms / self.a_ms if self.a_ms else None


def percentile_deltas(
    a: LatencyHistogram, b: LatencyHistogram, percentiles: Sequence[float] = (50.0, 75.0, 90.0, 99.0, 99.9, 99.99)
) -> list[PercentileDelta]:
    """B against A at each percentile."""
    a_values = a.values_at_percentiles(percentiles)
    b_values = b.values_at_percentiles(percentiles)
    return [PercentileDelta(f"{p:g}", a_values[p] / 1000.0, b_values[p] / 1000.0) for p in percentiles]


def compare_studies(
    a_cells: Sequence[CellSummary], b_cells: Sequence[CellSummary], *, seed: int = 0
) -> list[Comparison]:
    """Study B against study A: each function at each load level both ran, B's repetitions against A's.

    In the result, `baseline` is "A" and `function` is the function's name (measured in B).
    """
    a_arms, b_arms = _arms(a_cells), _arms(b_cells)
    comparisons: list[Comparison] = []
    for function, rate in sorted(a_arms.keys() & b_arms.keys()):
        comparisons.extend(
            compare_arms(
                a_arms[function, rate], b_arms[function, rate], function=function, baseline="A", rate=rate, seed=seed
            )
        )
    return comparisons


def _arms(cells: Sequence[CellSummary]) -> dict[tuple[str, float], list[CellSummary]]:
    """Cells grouped by (function, load level)."""
    grouped: dict[tuple[str, float], list[CellSummary]] = {}
    for cell in cells:
        grouped.setdefault((cell.function, cell.rate), []).append(cell)
    return grouped
