"""One second of a run, all workers merged: the counts, the corrected latency histogram and the
schedule-lag histogram, each kept dense while records for the second may still arrive and reduced to
its non-empty counters once it is closed (`close`), so a run's memory grows with its seconds, not its
requests.

The lag of each second is what places a stall in time: a run whose lag p99 is fine overall can
still have one second where the generator (or the machine) stopped, and that second's corrected
latencies carry the stall."""

from __future__ import annotations

import numpy as np

from .histogram import DecodedCounts, LatencyHistogram

#: Timeseries step: records are merged into whole seconds after the run's common start.
SECOND_S = 1.0
#: Percentiles of the per-second timeseries.
SECOND_PERCENTILES = (50.0, 99.0)
#: Percentiles of each second's schedule lag: p99 and the largest (p100).
LAG_PERCENTILES = (99.0, 100.0)


#: Dense histograms of closed seconds and minutes, reset and handed to the next ones: ~200 KB of
#: counters each, not allocated anew every second.
_SPARE_DENSE: list[LatencyHistogram] = []
MAX_SPARE_DENSE = 16


#: The counters of a histogram with none (open, or forgotten): shared, since a run keeps one per
#: second of its window and one per minute of its length (two arrays of 112 bytes each otherwise).
_NO_INDEX = np.zeros(0, dtype=np.int64)
_NO_COUNTS = np.zeros(0, dtype=np.uint64)
_NO_INDEX.flags.writeable = False
_NO_COUNTS.flags.writeable = False


def _dense_histogram() -> LatencyHistogram:
    return _SPARE_DENSE.pop() if _SPARE_DENSE else LatencyHistogram()


def _give_back(dense: LatencyHistogram) -> None:
    if len(_SPARE_DENSE) < MAX_SPARE_DENSE:
        dense.reset()
        _SPARE_DENSE.append(dense)


class SecondHistogram:
    """One histogram of one second: dense while open, its non-empty counters once closed, and the
    percentiles it was closed with (`percentiles`)."""

    __slots__ = (
        "_closed",
        "_dense",
        "_forgotten",
        "_percentiles",
        "_percentiles_us",
        "_sparse_counts",
        "_sparse_index",
    )

    def __init__(self, percentiles: tuple[float, ...]) -> None:
        self._percentiles = percentiles
        self._dense: LatencyHistogram | None = None  # taken at the first values
        self._closed = False
        self._sparse_index = _NO_INDEX
        self._sparse_counts = _NO_COUNTS
        self._percentiles_us: dict[float, int] | None = None
        self._forgotten = False

    @property
    def is_open(self) -> bool:
        return not self._closed

    def add(self, decoded: DecodedCounts) -> None:
        if decoded.total_count == 0 or self._forgotten:
            return
        if self._closed:
            self._reopen()
        if self._dense is None:
            self._dense = _dense_histogram()
        self._dense.add_counts(decoded)
        self._percentiles_us = None

    def close(self) -> None:
        """Keep only the non-empty counters and the percentiles the timeseries needs."""
        if self._closed:
            return
        self._percentiles_us = self.percentiles_us()
        if self._dense is not None:
            counts = self._dense.counts_array()
            self._sparse_index = np.flatnonzero(counts)
            self._sparse_counts = counts[self._sparse_index].copy()
            _give_back(self._dense)
            self._dense = None
        self._closed = True

    def forget(self) -> None:
        """Keep only the percentiles: a long run's old seconds (and minutes) cost a few numbers each.
        A record that arrives for it after this (minutes late) no longer moves its percentiles;
        its counts, its minute and the run's histograms still take it exactly."""
        self.close()
        self._sparse_index = _NO_INDEX
        self._sparse_counts = _NO_COUNTS
        self._forgotten = True

    def percentiles_us(self) -> dict[float, int]:
        if self._percentiles_us is None:
            if self._dense is None:
                return dict.fromkeys(self._percentiles, 0)  # nothing recorded
            self._percentiles_us = self._dense.values_at_percentiles(self._percentiles)
        return self._percentiles_us

    def _reopen(self) -> None:
        # A record arrived for a second already closed: rebuild its dense histogram exactly.
        dense = _dense_histogram()
        if self._sparse_index.size:
            start = int(self._sparse_index[0])
            stretch = np.zeros(int(self._sparse_index[-1]) - start + 1, dtype=np.uint64)
            stretch[self._sparse_index - start] = self._sparse_counts
            dense.add_counts(DecodedCounts(start, stretch, int(self._sparse_counts.sum())))
        self._dense = dense
        self._closed = False
        self._sparse_index = _NO_INDEX
        self._sparse_counts = _NO_COUNTS


class Second:
    """One second of the run, all workers merged."""

    __slots__ = ("completed", "end_s", "failed", "lag", "late", "latency", "reporters", "sent", "warmup")

    def __init__(self) -> None:
        self.completed = 0
        self.sent = 0
        self.failed = 0
        self.late = 0  # sends later than the engine's late threshold
        self.end_s = 0.0  # the furthest record end inside this second, relative to its start
        self.warmup = False
        self.reporters = 0
        self.latency = SecondHistogram(SECOND_PERCENTILES)
        self.lag = SecondHistogram(LAG_PERCENTILES)

    @property
    def is_open(self) -> bool:
        return self.latency.is_open or self.lag.is_open

    def add_latency(self, decoded: DecodedCounts) -> None:
        self.latency.add(decoded)

    def add_lag(self, decoded: DecodedCounts) -> None:
        self.lag.add(decoded)

    def close(self) -> None:
        self.latency.close()
        self.lag.close()

    def forget(self) -> None:
        self.latency.forget()
        self.lag.forget()

    def percentiles_us(self) -> dict[float, int]:
        """The corrected latency's `SECOND_PERCENTILES`."""
        return self.latency.percentiles_us()

    def lag_percentiles_us(self) -> dict[float, int]:
        """The schedule lag's `LAG_PERCENTILES` (p99 and the largest)."""
        return self.lag.percentiles_us()
