"""Comparison statistics: what a traffic-control function changes, with a confidence interval.

A study runs every function at every load level several times (repetitions). For one function at one
load level, each repetition gives one value of each metric (p50, p90, p99, p99.9, error rate, proxy
CPU per 1,000 rps, proxy memory). The function is compared with its baseline (`sidecar` for a
function, `none` for `sidecar`) by the difference of the two arms' means, and a 95% percentile
bootstrap interval of that difference: each arm's repetitions are resampled with replacement
(seeded, so a report is reproducible), the difference of the resampled means is taken many times, and
the interval is the middle 95% of those differences. The change is called significant when the
interval excludes 0.

With only a few repetitions the bootstrap sees only a few distinct values per arm: its interval is
wide and its real coverage is below the nominal 95%. `interval_note` says so in the reports.

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
from typing import TypedDict

import numpy as np

from ..scenarios.study_arms import usual_baseline
from .aggregate import failed_requests
from .histogram import LatencyHistogram
from .paired import PairedComparison, compare_paired
from .run_result import RunResult

#: Resamples per bootstrap interval: the interval's ends are stable to well under 1% of its width.
BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95
#: Below this many repetitions per arm the reports warn that the interval is only indicative.
FEW_REPETITIONS = 5

#: Percentiles compared, with the metric names they get.
COMPARED_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50_ms", 50.0),
    ("p90_ms", 90.0),
    ("p99_ms", 99.0),
    ("p99.9_ms", 99.9),
)


@dataclass(frozen=True)
class Metric:
    """One compared quantity: its key in reports, a label for people, and its unit."""

    key: str
    label: str
    unit: str


METRICS: tuple[Metric, ...] = (
    Metric("p50_ms", "p50 latency", "ms"),
    Metric("p90_ms", "p90 latency", "ms"),
    Metric("p99_ms", "p99 latency", "ms"),
    Metric("p99.9_ms", "p99.9 latency", "ms"),
    Metric("error_rate_pct", "error rate", "%"),
    Metric("proxy_cpu_mcores_per_krps", "proxy CPU per 1,000 rps", "mcores"),
    Metric("proxy_mem_mb", "proxy memory", "MB"),
)
METRIC_BY_KEY: dict[str, Metric] = {metric.key: metric for metric in METRICS}


# -- one run's figures --------------------------------------------------------------------------


def run_metrics(result: RunResult) -> dict[str, float | None]:
    """The compared metrics of one run (None where the run has no such figure, e.g. no mesh sampler)."""
    percentiles = result.corrected.values_at_percentiles([p for _, p in COMPARED_PERCENTILES])
    metrics: dict[str, float | None] = {key: percentiles[p] / 1000.0 for key, p in COMPARED_PERCENTILES}
    attempted = result.completed + result.error_count
    metrics["error_rate_pct"] = (
        100.0 * failed_requests(result.status_codes, result.errors) / attempted if attempted else None
    )
    metrics["proxy_cpu_mcores_per_krps"] = None
    metrics["proxy_mem_mb"] = None
    if result.mesh is not None:
        # The proxies are the sidecars and the ingress gateway: everything the mesh puts on the path.
        cpu_mcores = result.mesh.sidecar.cpu_mcores + result.mesh.ingress_gateway.cpu_mcores
        metrics["proxy_mem_mb"] = result.mesh.sidecar.mem_mb + result.mesh.ingress_gateway.mem_mb
        if result.actual_rps > 0:
            metrics["proxy_cpu_mcores_per_krps"] = cpu_mcores / (result.actual_rps / 1000.0)
    return metrics


class LagSecond(TypedDict):
    """One second of a cell's schedule lag, placed in wall-clock time."""

    unix_ms: int  # the second's start
    lag_p99_ms: float
    lag_max_ms: float
    late: int
    warmup: bool


def lag_seconds(result: RunResult) -> list[LagSecond]:
    """Each second of a run with its schedule lag, at its wall-clock start: the measured part starts
    at `started_unix_ms`, and the seconds before it (the warm-up) are counted back from there."""
    measured = [point.offset_s for point in result.timeseries if not point.warmup]
    if not measured or not result.started_unix_ms:
        return []
    first_measured_s = min(measured)
    return [
        LagSecond(
            unix_ms=result.started_unix_ms + round((point.offset_s - first_measured_s) * 1000.0),
            lag_p99_ms=point.lag_p99_ms,
            lag_max_ms=point.lag_max_ms,
            late=point.late,
            warmup=point.warmup,
        )
        for point in result.timeseries
    ]


@dataclass
class CellSummary:
    """One cell of a study (function x load level x repetition) as the statistics and reports see it."""

    function: str
    rate: float  # offered load, requests per second
    repetition: int  # 1-based
    order: int  # position in the study's run order, 0-based
    run_id: str
    run_dir: str = ""  # relative to the study folder
    metrics: dict[str, float | None] = field(default_factory=dict)
    actual_rps: float = 0.0
    completed: int = 0
    valid: bool = True
    validity: list[str] = field(default_factory=list)
    histogram: str = ""  # corrected latency, standard HdrHistogram base64
    started_unix_ms: int = 0
    # The generator's schedule lag in each second of the cell, warm-up included (`lag_seconds`), so
    # the study's report can place a stall in time across every cell.
    lag_seconds: list[LagSecond] = field(default_factory=list)
    topology: str = ""  # the testbed topology the cell ran in ("": the study names none)
    # Requests each replica answered over the measured part (`MeshUsage.replicas`), by service.
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)
    # Why the function could not be put in force in the cell's topology: the cell did not run, and
    # is left out of every comparison ("" for a cell that ran).
    not_supported: str = ""

    @classmethod
    def from_run(
        cls,
        result: RunResult,
        *,
        function: str,
        rate: float,
        repetition: int,
        order: int,
        run_dir: str = "",
        topology: str = "",
    ) -> CellSummary:
        return cls(
            function=function,
            rate=rate,
            repetition=repetition,
            order=order,
            run_id=result.run_id,
            run_dir=run_dir,
            metrics=run_metrics(result),
            actual_rps=result.actual_rps,
            completed=result.completed,
            valid=result.valid,
            validity=list(result.validity),
            histogram=result.corrected.encode(),
            started_unix_ms=result.started_unix_ms,
            lag_seconds=lag_seconds(result),
            topology=topology,
            replicas=dict(result.mesh.replicas) if result.mesh is not None else {},
        )

    def latency(self) -> LatencyHistogram:
        return LatencyHistogram.decode(self.histogram) if self.histogram else LatencyHistogram()


# -- the bootstrap -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DifferenceEstimate:
    """mean(treated) - mean(baseline), with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n_baseline: int
    n_treated: int
    confidence: float = CONFIDENCE

    @property
    def significant(self) -> bool:
        """The interval excludes 0: the change is unlikely to be noise (at the stated confidence).

        Never with a single value in an arm: resampling one value always gives it back, so the
        interval has no width and says nothing about noise.
        """
        if min(self.n_baseline, self.n_treated) < 2:
            return False
        return self.low > 0.0 or self.high < 0.0


def bootstrap_mean_difference(
    baseline: Sequence[float],
    treated: Sequence[float],
    *,
    seed: int | Sequence[int] = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> DifferenceEstimate:
    """Percentile bootstrap interval of mean(treated) - mean(baseline).

    Each arm is resampled with replacement on its own (the arms are independent runs), `resamples`
    times, from a generator seeded with `seed`, so the same data always gives the same interval.
    """
    base = np.asarray(baseline, dtype=np.float64)
    treat = np.asarray(treated, dtype=np.float64)
    if base.size == 0 or treat.size == 0:
        raise ValueError("both arms need at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} is not between 0 and 1")
    rng = np.random.default_rng(seed)
    base_means = base[rng.integers(0, base.size, size=(resamples, base.size))].mean(axis=1)
    treat_means = treat[rng.integers(0, treat.size, size=(resamples, treat.size))].mean(axis=1)
    differences = treat_means - base_means
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(differences, [tail, 1.0 - tail])
    return DifferenceEstimate(
        estimate=float(treat.mean() - base.mean()),
        low=float(low),
        high=float(high),
        n_baseline=int(base.size),
        n_treated=int(treat.size),
        confidence=confidence,
    )


def interval_note(repetitions: int) -> str:
    """What a reader should know about the intervals, given the repetitions per arm."""
    if repetitions < 2:
        return "1 repetition per arm: no interval can be drawn; the change is a single difference."
    if repetitions < FEW_REPETITIONS:
        return (
            f"{repetitions} repetitions per arm: the bootstrap sees only {repetitions} values per arm, "
            "so each interval is wide and covers less than the nominal 95%; treat 'significant' as a "
            "hint, and add repetitions to confirm."
        )
    return f"{repetitions} repetitions per arm: 95% percentile bootstrap of the difference of means."


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
