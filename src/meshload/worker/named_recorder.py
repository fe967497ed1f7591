"""Recording per request name as well as in total (Locust's request `name`), on top of `IntervalRecorder`.

The hot path stays the recorder's: one more small integer (the name's id) goes into a preallocated
column beside the four it already writes. At each fold the buffered responses are split by name
with one numpy sort and recorded into that name's histograms, so the per-name figures cost nothing
per request beyond the id. Names get ids on first sight; past `MAX_NAMES` names, the rest share
`OVERFLOW_NAME`, so memory stays bounded whatever a locustfile does with its names.
"""

from __future__ import annotations

from array import array

import numpy as np

from ..results.histogram import RECORD_ENCODE_LEVEL, LatencyHistogram
from ..results.interval import IntervalRecord, NameInterval
from .recorder import DEFAULT_CAPACITY, LATE_THRESHOLD_US, IntervalRecorder

#: Distinct request names recorded one by one (each costs two HDR histograms, about 400 KB).
MAX_NAMES = 100
#: Where the names beyond `MAX_NAMES` are recorded together.
OVERFLOW_NAME = "(other names)"


class _NameFigures:
    """One name's counts and histograms for the current interval."""

    __slots__ = ("completed", "corrected", "errors", "failures", "uncorrected")

    def __init__(self) -> None:
        self.corrected = LatencyHistogram()
        self.uncorrected = LatencyHistogram()
        self.completed = 0
        self.errors = 0
        self.failures = 0

    @property
    def active(self) -> bool:
        return bool(self.completed or self.errors or self.failures)

    def interval(self) -> NameInterval:
        return NameInterval(
            completed=self.completed,
            errors=self.errors,
            failures=self.failures,
            latency_corrected=self.corrected.encode(RECORD_ENCODE_LEVEL) if self.completed else "",
            latency_uncorrected=self.uncorrected.encode(RECORD_ENCODE_LEVEL) if self.completed else "",
        )

    def reset(self) -> None:
        if self.completed:
            self.corrected.reset()
            self.uncorrected.reset()
        self.completed = self.errors = self.failures = 0


class NamedIntervalRecorder(IntervalRecorder):
    """An `IntervalRecorder` whose records also carry `names`: the same responses split by name."""

    def __init__(
        self,
        *,
        worker_id: str,
        run_id: str = "",
        clock_offset_ms: float = 0.0,
        capacity: int = DEFAULT_CAPACITY,
        late_threshold_us: int = LATE_THRESHOLD_US,
        max_names: int = MAX_NAMES,
    ) -> None:
        super().__init__(
            worker_id=worker_id,
            run_id=run_id,
            clock_offset_ms=clock_offset_ms,
            capacity=capacity,
            late_threshold_us=late_threshold_us,
        )
        self.max_names = max_names
        self._name_ids = array("H", bytes(2 * capacity))
        self._ids: dict[str, int] = {}
        self._names: list[str] = []
        self._figures: list[_NameFigures] = []

    # -- hot path ----------------------------------------------------------------------------------

    def name_id(self, name: str) -> int:
        """The id of `name` (given on first sight; one dict lookup after that)."""
        found = self._ids.get(name)
        return found if found is not None else self._new_name(name)

    def record_named_response(self, name_id: int, planned_ns: int, sent_ns: int, done_ns: int, status: int) -> None:
        """One response of the name `name_id` (see `IntervalRecorder.record_response`)."""
        self._name_ids[self.count] = name_id
        self.record_response(planned_ns, sent_ns, done_ns, status)

    # -- slow paths --------------------------------------------------------------------------------

    def record_named_error(self, name_id: int, kind: str, planned_ns: int = 0, sent_ns: int = 0) -> None:
        """A transport error of the name `name_id` (see `IntervalRecorder.record_error`)."""
        self._figures[name_id].errors += 1
        self.record_error(kind, planned_ns, sent_ns)

    def count_failure(self, name_id: int) -> None:
        """The load tool judged a request of `name_id` failed (an error, a bad status or a failed check)."""
        self._figures[name_id].failures += 1

    def fold(self) -> None:
        n = self.count
        if n:
            self._fold_names(n)
        super().fold()

    def cut(
        self,
        *,
        offset_s: float,
        duration_s: float,
        start_unix_ms: int,
        warmup: bool = False,
        final: bool = False,
    ) -> IntervalRecord:
        record = super().cut(
            offset_s=offset_s, duration_s=duration_s, start_unix_ms=start_unix_ms, warmup=warmup, final=final
        )
        record.names = {
            self._names[name_id]: figures.interval() for name_id, figures in enumerate(self._figures) if figures.active
        }
        for figures in self._figures:
            figures.reset()
        return record

    # -- inside ------------------------------------------------------------------------------------

    def _new_name(self, name: str) -> int:
        if len(self._names) >= self.max_names:
            # Not remembered: a locustfile naming every request differently must not grow this.
            overflow = self._ids.get(OVERFLOW_NAME)
            return overflow if overflow is not None else self._add(OVERFLOW_NAME)
        return self._add(name)

    def _add(self, name: str) -> int:
        name_id = len(self._names)
        self._names.append(name)
        self._figures.append(_NameFigures())
        self._ids[name] = name_id
        return name_id

    def _fold_names(self, n: int) -> None:
        ids = np.frombuffer(self._name_ids, dtype=np.uint16, count=n)
        planned, sent, done = self._buffered_ns(n)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        corrected_us = ((done - planned) // 1000)[order]
        uncorrected_us = ((done - sent) // 1000)[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        ends = np.r_[starts[1:], n]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            figures = self._figures[int(sorted_ids[start])]
            figures.corrected.record_batch(corrected_us[start:end])
            figures.uncorrected.record_batch(uncorrected_us[start:end])
            figures.completed += end - start
