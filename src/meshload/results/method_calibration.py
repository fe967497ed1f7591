"""How often each interval method covers a known truth, measured on simulated studies.

For every simulated study (`synthetic_study.simulate_studies`), each metric is reduced to one paired
difference per block (function minus baseline), each candidate method draws its interval, and the
figures counted are: coverage (the interval holds the true effect), the call rate (the interval
excludes 0: the false-positive rate when the effect is 0, the power otherwise) and the median
half-width. `bench/bench_study_statistics.py` prints them for many settings; the tests check the
chosen method with fewer studies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .block_intervals import BLOCK_BOOTSTRAP_RESAMPLES, BLOCK_METHODS, Intervals
from .hierarchical import EmpiricalDistribution, hierarchical_bootstrap
from .sequential import MIN_BLOCKS_BEFORE_STOP, prefix_intervals, stopping_blocks
from .synthetic_study import SimulatedStudies, SyntheticStudyModel, simulate_studies

#: Metrics calibrated: the percentiles a study compares, then proxy CPU and the error rate.
CALIBRATED_PERCENTILES: tuple[tuple[str, float], ...] = (("p50_ms", 50.0), ("p90_ms", 90.0), ("p99_ms", 99.0))
CALIBRATED_METRICS: tuple[str, ...] = (
    *(key for key, _ in CALIBRATED_PERCENTILES),
    "proxy_cpu_mcores_per_krps",
    "error_rate_pct",
)
#: Every candidate: the block-level ones and the hierarchical bootstrap (percentiles only).
METHODS: tuple[str, ...] = (*BLOCK_METHODS, "hierarchical")


@dataclass(frozen=True)
class CoverageFigures:
    """One method on one metric, over `studies` simulated studies of `blocks` blocks."""

    method: str
    metric: str
    blocks: int
    effect: float  # the true change, in the metric's unit
    studies: int
    coverage: float  # fraction of intervals holding `effect`
    called: float  # fraction of intervals excluding 0
    median_half_width: float  # the median: an interval of infinite width (bootstrap-t) stays countable

    @property
    def coverage_standard_error(self) -> float:
        """Monte Carlo standard error of `coverage` (binomial)."""
        return float(np.sqrt(max(self.coverage * (1.0 - self.coverage), 1e-12) / self.studies))


@dataclass(frozen=True)
class Effect:
    """The true change of the function against its baseline, per metric family."""

    latency_ms: float = 0.0
    cpu_mcores_per_krps: float = 0.0
    error_rate_pct: float = 0.0

    def truth(self, metric: str) -> float:
        if metric == "proxy_cpu_mcores_per_krps":
            return self.cpu_mcores_per_krps
        if metric == "error_rate_pct":
            return self.error_rate_pct
        return self.latency_ms


def block_differences(simulated: SimulatedStudies, metric: str) -> np.ndarray:
    """Function minus baseline in every block, shape (studies, blocks)."""
    if metric == "proxy_cpu_mcores_per_krps":
        cells = simulated.cpu_mcores_per_krps
    elif metric == "error_rate_pct":
        cells = simulated.error_rate_pct
    else:
        cells = simulated.percentile_ms(dict(CALIBRATED_PERCENTILES)[metric])
    return cells[..., 1] - cells[..., 0]


def hierarchical_intervals(
    simulated: SimulatedStudies,
    percentile: float,
    *,
    confidence: float,
    rng: np.random.Generator,
    resamples: int,
) -> Intervals:
    """The hierarchical bootstrap of every simulated study (one study at a time)."""
    results = []
    for study in simulated.latencies_ms:
        blocks = [
            (EmpiricalDistribution.from_samples(block[0]), EmpiricalDistribution.from_samples(block[1]))
            for block in study
        ]
        results.append(hierarchical_bootstrap(blocks, percentile, confidence=confidence, rng=rng, resamples=resamples))
    return Intervals(
        np.array([r.estimate for r in results]), np.array([r.low for r in results]), np.array([r.high for r in results])
    )


def method_intervals(
    method: str,
    simulated: SimulatedStudies,
    metric: str,
    *,
    confidence: float,
    rng: np.random.Generator,
    resamples: int = BLOCK_BOOTSTRAP_RESAMPLES,
) -> Intervals | None:
    """The intervals `method` draws for `metric` in every simulated study (None: not applicable)."""
    if method == "hierarchical":
        percentiles = dict(CALIBRATED_PERCENTILES)
        if metric not in percentiles:
            return None  # a cell's CPU or error rate is one figure: there are no requests to resample
        return hierarchical_intervals(
            simulated, percentiles[metric], confidence=confidence, rng=rng, resamples=resamples
        )
    return BLOCK_METHODS[method](
        block_differences(simulated, metric), confidence=confidence, rng=rng, resamples=resamples
    )


def measure_coverage(
    model: SyntheticStudyModel,
    *,
    blocks: int,
    effect: Effect,
    studies: int,
    methods: Sequence[str] = ("t",),
    metrics: Sequence[str] = CALIBRATED_METRICS,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 250,
    resamples: int = BLOCK_BOOTSTRAP_RESAMPLES,
) -> list[CoverageFigures]:
    """Coverage, call rate and half-width of each method on each metric, over `studies` simulated
    studies (simulated `chunk` at a time, to bound memory). Every method sees the same studies."""
    rng = np.random.default_rng(seed)
    covered: dict[tuple[str, str], list[np.ndarray]] = {}
    called: dict[tuple[str, str], list[np.ndarray]] = {}
    widths: dict[tuple[str, str], list[np.ndarray]] = {}
    for start in range(0, studies, chunk):
        simulated = simulate_studies(
            model,
            studies=min(chunk, studies - start),
            blocks=blocks,
            rng=rng,
            effect_ms=effect.latency_ms,
            effect_cpu=effect.cpu_mcores_per_krps,
            effect_error_pct=effect.error_rate_pct,
        )
        for method in methods:
            for metric in metrics:
                intervals = method_intervals(
                    method, simulated, metric, confidence=confidence, rng=rng, resamples=resamples
                )
                if intervals is None:
                    continue
                key = (method, metric)
                covered.setdefault(key, []).append(intervals.covers(effect.truth(metric)))
                called.setdefault(key, []).append(intervals.excludes_zero())
                widths.setdefault(key, []).append(intervals.half_width)
    return [
        CoverageFigures(
            method=method,
            metric=metric,
            blocks=blocks,
            effect=effect.truth(metric),
            studies=studies,
            coverage=float(np.concatenate(covered[method, metric]).mean()),
            called=float(np.concatenate(called[method, metric]).mean()),
            median_half_width=float(np.median(np.concatenate(widths[method, metric]))),
        )
        for method, metric in covered
    ]


@dataclass(frozen=True)
class SequentialFigures:
    """The half-width stopping rule on one metric, over `studies` simulated studies."""

    metric: str
    target: float
    effect: float
    studies: int
    coverage: float  # of the interval at the block where the rule stopped
    called: float  # intervals at the stop excluding 0
    reached: float  # share of studies that reached every target within the budget
    mean_blocks: float  # blocks run before stopping


def measure_sequential_coverage(
    model: SyntheticStudyModel,
    *,
    targets: dict[str, float],
    effect: Effect,
    studies: int,
    max_blocks: int,
    min_blocks: int = MIN_BLOCKS_BEFORE_STOP,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 250,
) -> list[SequentialFigures]:
    """Run the half-width rule (`sequential.stopping_blocks`) on simulated studies that add blocks up
    to `max_blocks`, and measure the interval each study ends with: does it still cover the truth?"""
    rng = np.random.default_rng(seed)
    metrics = list(targets)
    goal = np.array([targets[m] for m in metrics])
    covered, called, reached, blocks = [], [], [], []
    for start in range(0, studies, chunk):
        simulated = simulate_studies(
            model,
            studies=min(chunk, studies - start),
            blocks=max_blocks,
            rng=rng,
            effect_ms=effect.latency_ms,
            effect_cpu=effect.cpu_mcores_per_krps,
            effect_error_pct=effect.error_rate_pct,
        )
        differences = np.stack([block_differences(simulated, m) for m in metrics], axis=1)
        stop = stopping_blocks(differences, goal, min_blocks=min_blocks, confidence=confidence)
        prefix = prefix_intervals(differences, confidence=confidence)
        at = np.broadcast_to((stop - 1)[:, None, None], (stop.size, len(metrics), 1))
        low = np.take_along_axis(prefix.low, at, axis=-1)[..., 0]
        high = np.take_along_axis(prefix.high, at, axis=-1)[..., 0]
        truth = np.array([effect.truth(m) for m in metrics])[None, :]
        covered.append((low <= truth) & (truth <= high))
        called.append((low > 0) | (high < 0))
        reached.append(np.all((high - low) / 2.0 <= goal[None, :], axis=1))
        blocks.append(stop)
    cover, call = np.concatenate(covered), np.concatenate(called)
    reach, used = np.concatenate(reached), np.concatenate(blocks)
    return [
        SequentialFigures(
            metric=metric,
            target=float(goal[index]),
            effect=effect.truth(metric),
            studies=studies,
            coverage=float(cover[:, index].mean()),
            called=float(call[:, index].mean()),
            reached=float(reach.mean()),
            mean_blocks=float(used.mean()),
        )
        for index, metric in enumerate(metrics)
    ]
