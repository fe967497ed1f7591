"""A run's headline figures, each with a 95% interval from the run's own data.

A run's p99 is an estimate, and how far it could move on a rerun of the same system depends on the
run: a 10-second run at 50 rps knows its p99 far less well than an hour at 2,000 rps. The history's
trend (see `history.trend`) weighs each run by that uncertainty, so it is computed once here, when
the run is recorded, from what the run's files hold.

Two sources of uncertainty, and the interval covers both (at each end the wider one wins):

- **Sampling** (order statistics): were the requests independent, the p-th percentile of n of them
  lies between the values at ranks n·p ± 1.96·√(n·p·(1-p)) with 95% confidence, whatever the
  distribution (the binomial interval for a quantile).
- **Time** (block bootstrap): requests are not independent; a slow second holds many slow requests.
  The measured seconds (every worker's interval records merged per second) are the blocks; they are
  resampled with replacement, merged exactly, and the percentile of each resample taken; the middle
  95% of those is the interval. Beyond `MAX_BLOCKS` seconds, consecutive seconds form one block.

The error rate gets the Wilson interval of its count, widened the same way by a block bootstrap of
the per-second timeseries. Proxy CPU and memory are averages the sampler reports without their
spread, so they get no interval (`low`/`high` None); the trend then relies on the spread between runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .aggregate import OFFSET_TOLERANCE_S, failed_requests
from .histogram import LatencyHistogram, _index_tables, _scratch_reference, decode_counts
from .interval import IntervalRecord
from .run_result import RunResult
from .seconds import SECOND_S

CONFIDENCE = 0.95
#: Normal quantile of the two-sided 95% interval.
Z_95 = 1.959963984540054
#: Bootstrap resamples: the interval's ends move by well under its width's 5% between seeds.
RESAMPLES = 400
#: Most blocks a run is cut into (a longer run merges consecutive seconds into one block).
MAX_BLOCKS = 600
#: Fewer blocks than this give no bootstrap (it would see too few distinct resamples).
MIN_BLOCKS = 3

#: The percentiles with an interval, keyed as everywhere in the reports.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50_ms", 50.0),
    ("p90_ms", 90.0),
    ("p99_ms", 99.0),
    ("p99.9_ms", 99.9),
)


@dataclass(frozen=True)
class Estimate:
    """One figure of one run and its 95% interval (low/high None: no interval could be drawn)."""

    value: float | None
    low: float | None = None
    high: float | None = None


def headline_figures(result: RunResult, *, seed: int = 0) -> dict[str, Estimate]:
    """p50/p90/p99/p99.9 (ms, corrected), the error rate (%) with intervals, proxy CPU (mcores)
    and memory (MB) when a sampler ran, and the measured rate (requests/s)."""
    figures = _percentile_estimates(result, seed)
    figures["error_rate_pct"] = _error_rate_estimate(result, seed)
    cpu = mem = None
    if result.mesh is not None:
        # The proxies are the sidecars and the ingress gateway: everything the mesh puts on the path.
        cpu = result.mesh.sidecar.cpu_mcores + result.mesh.ingress_gateway.cpu_mcores
        mem = result.mesh.sidecar.mem_mb + result.mesh.ingress_gateway.mem_mb
    figures["proxy_cpu_mcores"] = Estimate(cpu)
    figures["proxy_mem_mb"] = Estimate(mem)
    figures["rate_rps"] = Estimate(result.actual_rps)
    return figures


# -- percentiles ---------------------------------------------------------------------------------


def _percentile_estimates(result: RunResult, seed: int) -> dict[str, Estimate]:
    histogram = result.corrected
    if histogram.total_count == 0:
        return {key: Estimate(None) for key, _ in PERCENTILES}
    values = histogram.values_at_percentiles([p for _, p in PERCENTILES])
    sampling = _order_statistic_intervals(histogram, [p for _, p in PERCENTILES])
    blocks = _block_counts(_measured_records(result))
    timed = _bootstrap_intervals(*blocks, [p for _, p in PERCENTILES], seed) if blocks is not None else {}
    estimates = {}
    for key, percentile in PERCENTILES:
        low, high = sampling[percentile]
        if percentile in timed:
            low, high = min(low, timed[percentile][0]), max(high, timed[percentile][1])
        value = values[percentile]
        estimates[key] = Estimate(value / 1000.0, min(low, value) / 1000.0, max(high, value) / 1000.0)
    return estimates


def _order_statistic_intervals(
    histogram: LatencyHistogram, percentiles: Sequence[float]
) -> dict[float, tuple[int, int]]:
    """The values (µs) at ranks n·p ± z·√(n·p·(1-p)): the distribution-free 95% interval."""
    buckets = histogram.buckets()
    highs = np.array([high for _, high, _ in buckets], dtype=np.int64)
    cumulative = np.cumsum([count for _, _, count in buckets])
    total = int(cumulative[-1])
    intervals = {}
    for percentile in percentiles:
        p = percentile / 100.0
        half = Z_95 * math.sqrt(total * p * (1.0 - p))
        ranks = (max(math.floor(total * p - half), 1), min(math.ceil(total * p + half), total))
        low, high = (int(highs[np.searchsorted(cumulative, rank, side="left")]) for rank in ranks)
        intervals[percentile] = (low, high)
    return intervals


def _measured_records(result: RunResult) -> list[IntervalRecord]:
    """The records of the measured part (a record read back from an interval log has no warm-up
    flag, so its place in time decides: warm-up intervals end at or before the warm-up's end)."""
    warmup_end_s = result.plan.warmup_s + OFFSET_TOLERANCE_S
    return [
        record
        for record in result.records
        if not record.warmup
        and record.latency_corrected
        and not (result.plan.warmup_s > 0 and record.offset_s + record.duration_s <= warmup_end_s)
    ]


def _block_counts(records: list[IntervalRecord]) -> tuple[np.ndarray, np.ndarray] | None:
    """(blocks × used counters matrix, the highest value in µs of each used counter), or None when
    the records cannot be split into enough blocks (or hold a histogram of other settings)."""
    by_second: dict[int, list[tuple[int, np.ndarray]]] = {}
    for record in records:
        decoded = decode_counts(record.latency_corrected)
        if decoded.foreign is not None:
            return None
        if decoded.total_count == 0:
            continue
        second = max(math.floor((record.offset_s + OFFSET_TOLERANCE_S) / SECOND_S), 0)
        by_second.setdefault(second, []).append((decoded.start_index, decoded.counts))
    if len(by_second) < MIN_BLOCKS:
        return None
    seconds = sorted(by_second)
    per_block = math.ceil(len(seconds) / MAX_BLOCKS)
    block_of_second = {second: position // per_block for position, second in enumerate(seconds)}
    used = np.unique(
        np.concatenate([start + np.flatnonzero(counts) for parts in by_second.values() for start, counts in parts])
    )
    matrix = np.zeros((max(block_of_second.values()) + 1, used.size), dtype=np.float64)
    for second, parts in by_second.items():
        row = matrix[block_of_second[second]]
        for start, counts in parts:
            nonzero = np.flatnonzero(counts)
            np.add.at(row, np.searchsorted(used, start + nonzero), counts[nonzero].astype(np.float64))
    _, _, highest = _index_tables(_scratch_reference())
    return matrix, highest[used]


def _bootstrap_intervals(
    matrix: np.ndarray, values_us: np.ndarray, percentiles: Sequence[float], seed: int
) -> dict[float, tuple[int, int]]:
    """The middle 95% of each percentile over resamples of whole blocks (HdrHistogram's rule for the
    percentile of each resampled histogram)."""
    rng = np.random.default_rng(seed)
    blocks = matrix.shape[0]
    weights = rng.multinomial(blocks, np.full(blocks, 1.0 / blocks), size=RESAMPLES).astype(np.float64)
    cumulative = np.cumsum(weights @ matrix, axis=1)
    totals = cumulative[:, -1]
    tail = (1.0 - CONFIDENCE) / 2.0
    intervals = {}
    for percentile in percentiles:
        targets = np.maximum(np.floor(percentile / 100.0 * totals + 0.5), 1.0)
        indexes = (cumulative < targets[:, None]).sum(axis=1)
        resampled = values_us[np.minimum(indexes, values_us.size - 1)]
        low, high = np.quantile(resampled, [tail, 1.0 - tail])
        intervals[percentile] = (int(low), int(high))
    return intervals


# -- error rate ----------------------------------------------------------------------------------


def _error_rate_estimate(result: RunResult, seed: int) -> Estimate:
    failed = failed_requests(result.status_codes, result.errors)
    attempted = result.completed + result.error_count
    if attempted == 0:
        return Estimate(None)
    rate = failed / attempted
    low, high = wilson_interval(failed, attempted)
    seconds = [point for point in result.timeseries if not point.warmup]
    if len(seconds) >= MIN_BLOCKS and failed > 0:
        # The per-second series gives the spread of the ratio over time; scaled to the exact figure.
        errors = np.array([point.errors for point in seconds], dtype=np.float64)
        completed = np.array([point.rate for point in seconds], dtype=np.float64)
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(seconds), size=(RESAMPLES, len(seconds)))
        ratios = errors[picks].sum(axis=1) / np.maximum(completed[picks].sum(axis=1) + errors[picks].sum(axis=1), 1.0)
        centre = errors.sum() / max(completed.sum() + errors.sum(), 1.0)
        tail = (1.0 - CONFIDENCE) / 2.0
        q_low, q_high = np.quantile(ratios, [tail, 1.0 - tail])
        low, high = min(low, rate * q_low / centre), max(high, rate * q_high / centre)
    return Estimate(100.0 * rate, 100.0 * max(low, 0.0), 100.0 * min(high, 1.0))


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (sensible at 0 and at small counts)."""
    if successes == 0:
        return 0.0, Z_95 * Z_95 / (trials + Z_95 * Z_95)
    p = successes / trials
    z2 = Z_95 * Z_95
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z_95 * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(centre - half, 0.0), min(centre + half, 1.0)
