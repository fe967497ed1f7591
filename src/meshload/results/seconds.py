"""One second of a run, all workers merged: the counts, and the corrected latency histogram, kept
dense while records for the second may still arrive and reduced to its non-empty counters once it is
closed (`close`), so a run's memory grows with its seconds, not its requests."""

from __future__ import annotations

import numpy as np

from .histogram import DecodedCounts, LatencyHistogram

#: Percentiles of the per-second timeseries.
SECOND_PERCENTILES = (50.0, 99.0)


class Second:
    """One second of the run, all workers merged."""

    __slots__ = (
        "_dense",
        "_percentiles_us",
        "_sparse_counts",
        "_sparse_index",
        "completed",
        "end_s",
        "failed",
        "reporters",
        "sent",
        "warmup",
    )

    def __init__(self) -> None:
        self.completed = 0
        self.sent = 0
        self.failed = 0
        self.end_s = 0.0  # the furthest record end inside this second, relative to its start
        self.warmup = False
        self.reporters = 0
        self._dense: LatencyHistogram | None = LatencyHistogram()
        self._sparse_index = np.zeros(0, dtype=np.int64)
        self._sparse_counts = np.zeros(0, dtype=np.uint64)
        self._percentiles_us: dict[float, int] | None = None

    @property
    def is_open(self) -> bool:
        return self._dense is not None

    def add_latency(self, decoded: DecodedCounts) -> None:
        if decoded.total_count == 0:
            return
        if self._dense is None:
            self._reopen()
        assert self._dense is not None
        self._dense.add_counts(decoded)
        self._percentiles_us = None

    def close(self) -> None:
        """Keep only the non-empty counters and the percentiles the timeseries needs."""
        if self._dense is None:
            return
        self._percentiles_us = self._dense.values_at_percentiles(SECOND_PERCENTILES)
        counts = self._dense.counts_array()
        self._sparse_index = np.flatnonzero(counts)
        self._sparse_counts = counts[self._sparse_index].copy()
        self._dense = None

    def percentiles_us(self) -> dict[float, int]:
        if self._percentiles_us is None:
            assert self._dense is not None
            self._percentiles_us = self._dense.values_at_percentiles(SECOND_PERCENTILES)
        return self._percentiles_us

    def _reopen(self) -> None:
        # A record arrived for a second already closed: rebuild its dense histogram exactly.
        dense = LatencyHistogram()
        if self._sparse_index.size:
            start = int(self._sparse_index[0])
            stretch = np.zeros(int(self._sparse_index[-1]) - start + 1, dtype=np.uint64)
            stretch[self._sparse_index - start] = self._sparse_counts
            dense.add_counts(DecodedCounts(start, stretch, int(self._sparse_counts.sum())))
        self._dense = dense
        self._sparse_index = np.zeros(0, dtype=np.int64)
        self._sparse_counts = np.zeros(0, dtype=np.uint64)
