"""The hierarchical bootstrap of a paired percentile difference: over blocks, and the requests inside.

Each resample draws the blocks with replacement, then, inside every drawn block, resamples each arm's
requests with replacement (a multinomial over the cell's histogram bins) and takes the difference of
the two resampled percentiles; the resample's value is the mean over its blocks, and the interval is
the middle `confidence` of those means.

Resampling n requests from a histogram and reading its k-th smallest value (HdrHistogram's rank for a
percentile) needs no multinomial draw of every bin: the k-th smallest of n uniform draws is
Beta(k, n - k + 1), and the histogram's inverse CDF maps it to the value the full resample would
give. That is the same distribution, at the cost of one Beta variate per cell per resample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .block_intervals import BLOCK_BOOTSTRAP_RESAMPLES, Intervals
from .histogram import LatencyHistogram


@dataclass(frozen=True)
class EmpiricalDistribution:
    """One cell's latencies as sorted distinct values and their cumulative counts (any unit)."""

    values: np.ndarray
    cumulative: np.ndarray

    @property
    def total(self) -> int:
        return int(self.cumulative[-1]) if self.cumulative.size else 0

    @classmethod
    def from_histogram(cls, histogram: LatencyHistogram, *, scale: float = 1e-3) -> EmpiricalDistribution:
        """A cell's HDR histogram; each bin stands for its highest equivalent value (as HdrHistogram
        reports percentiles), scaled from µs by `scale` (to ms by default)."""
        buckets = histogram.buckets()
        highest = np.array([bucket[1] for bucket in buckets], dtype=np.float64) * scale
        counts = np.array([bucket[2] for bucket in buckets], dtype=np.int64)
        return cls(highest, np.cumsum(counts))

    @classmethod
    def from_samples(cls, samples: np.ndarray) -> EmpiricalDistribution:
        ordered = np.sort(np.asarray(samples, dtype=np.float64))
        return cls(ordered, np.arange(1, ordered.size + 1))


def percentile_rank(percentile: float, total: int) -> int:
    """HdrHistogram's rank of a percentile among `total` values (1-based, as `values_at_percentiles`)."""
    return max(int(percentile / 100.0 * total + 0.5), 1)


def resampled_percentiles(
    cell: EmpiricalDistribution, percentile: float, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """The percentile of `draws` independent resamples (with replacement, same size) of the cell."""
    total = cell.total
    if total == 0:
        raise ValueError("cannot resample an empty cell")
    rank = percentile_rank(percentile, total)
    uniform_order_statistic = rng.beta(rank, total - rank + 1, size=draws)
    index = np.searchsorted(cell.cumulative, uniform_order_statistic * total, side="right")
    return cell.values[np.minimum(index, cell.values.size - 1)]


def hierarchical_bootstrap(
    blocks: Sequence[tuple[EmpiricalDistribution, EmpiricalDistribution]],
    percentile: float,
    *,
    confidence: float = 0.95,
    rng: np.random.Generator,
    resamples: int = BLOCK_BOOTSTRAP_RESAMPLES,
) -> Intervals:
    """Interval of the mean over blocks of (treated - baseline) percentile; `blocks` holds each
    block's (baseline, treated) cells. The estimate is the observed mean difference."""
    n = len(blocks)
    if n < 2:
        raise ValueError("an interval needs at least 2 blocks")
    rank_values = [
        (base.values[_rank_index(base, percentile)], treated.values[_rank_index(treated, percentile)])
        for base, treated in blocks
    ]
    estimate = float(np.mean([treated - base for base, treated in rank_values]))
    chosen = rng.integers(0, n, size=(resamples, n))
    differences = np.empty(chosen.shape, dtype=np.float64)
    # Every slot of every resample gets its own inner resample, even when a block is drawn twice.
    for block, (base, treated) in enumerate(blocks):
        slots = chosen == block
        draws = int(slots.sum())
        if draws:
            differences[slots] = resampled_percentiles(treated, percentile, draws, rng) - resampled_percentiles(
                base, percentile, draws, rng
            )
    means = differences.mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Intervals(np.asarray(estimate), np.asarray(low), np.asarray(high))


def _rank_index(cell: EmpiricalDistribution, percentile: float) -> int:
    rank = percentile_rank(percentile, cell.total)
    return int(np.searchsorted(cell.cumulative, rank, side="left"))
