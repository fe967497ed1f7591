"""What a live view of a run shows while it runs: the figures of the moment (`LiveFigures`) and the
latency distributions so far as Prometheus summaries (`LatencySummary`); `RunAggregator` gives both."""

from __future__ import annotations

from dataclasses import dataclass

from .histogram import LatencyHistogram


@dataclass(frozen=True)
class LiveFigures:
    """What a live view shows once a second; cheap to compute at any moment of the run."""

    elapsed_s: float  # the furthest interval end any worker reported, after the common start
    total_s: float  # warm-up + measured duration of the plan
    rate: float  # completed responses per second in the last complete second
    sent_rate: float  # sends per second in that second
    p50_ms: float  # corrected latency so far (the measured part; the warm-up while in it)
    p99_ms: float
    lag_p99_ms: float  # schedule lag so far
    completed: int  # responses so far, warm-up included
    errors: int  # failed requests so far, warm-up included
    workers_alive: int
    workers_lost: int
    workers_finished: int  # workers whose final record has arrived
    in_warmup: bool  # no measured record has arrived yet


@dataclass(frozen=True)
class LatencySummary:
    """One latency distribution so far as a Prometheus summary: {quantile: seconds}, count, sum."""

    quantiles: dict[float, float]
    count: int
    sum_s: float


#: Quantiles of the live latency summaries (as fractions, Prometheus's `quantile` label).
LIVE_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)


def latency_summaries(
    histograms: dict[str, LatencyHistogram], quantiles: tuple[float, ...] = LIVE_QUANTILES
) -> dict[str, LatencySummary]:
    """Each histogram as a summary at `quantiles` (seconds); an empty one has zeros."""
    summaries = {}
    for name, histogram in histograms.items():
        values = histogram.values_at_percentiles([100.0 * q for q in quantiles]) if histogram.total_count else {}
        summaries[name] = LatencySummary(
            quantiles={q: values.get(100.0 * q, 0) / 1e6 for q in quantiles},
            count=histogram.total_count,
            sum_s=histogram.sum_us() / 1e6 if histogram.total_count else 0.0,
        )
    return summaries
