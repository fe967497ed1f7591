"""Per-interval recording of one worker's requests, cut into `IntervalRecord`s.

The hot path (`record_response`) only writes four integers into preallocated `array.array`s. The
arrays are folded into three HDR histograms with one numpy batch per fold: when they fill up, and at
every interval cut. Nothing grows with the number of requests: memory is fixed by `capacity`.

Every request ends exactly one way: a response (any HTTP status, or any gRPC status, recorded in the
latency histograms) or an error of one of `ERROR_KINDS` (counted, kept out of the latency histograms).
Statuses are small integers on the hot path; a record names them by their number (HTTP) or by the
`status_names` the engine gives (gRPC: "OK", "UNAVAILABLE", ...).
"""

from __future__ import annotations

from array import array

import numpy as np

from ..results.histogram import LatencyHistogram
from ..results.interval import ERROR_KINDS, IntervalRecord
from .cpu import process_cpu_seconds

#: A send this far behind its planned instant counts as `late` (the generator's own accuracy goal).
LATE_THRESHOLD_US = 1_000
#: Responses buffered between folds. Small enough that one fold costs well under a millisecond.
DEFAULT_CAPACITY = 8_192
#: HTTP status codes are counted in a table of this size; anything above goes to the last slot.
_STATUS_SLOTS = 1_000


class IntervalRecorder:
    """Records responses and errors; `cut()` turns what was recorded since the last cut into a record."""

    def __init__(
        self,
        *,
        worker_id: str,
        run_id: str = "",
        clock_offset_ms: float = 0.0,
        capacity: int = DEFAULT_CAPACITY,
        late_threshold_us: int = LATE_THRESHOLD_US,
        status_names: tuple[str, ...] = (),
    ) -> None:
        self.worker_id = worker_id
        # A send later than this behind its planned instant is counted as late: the engine's accuracy.
        self.late_threshold_us = late_threshold_us
        #: How a record names status `i`: `status_names[i]`, or (none given) the number itself.
        self.status_names = status_names
        self.run_id = run_id
        self.clock_offset_ms = clock_offset_ms
        self.capacity = capacity
        zeros = bytes(8 * capacity)
        self._planned_ns = array("q", zeros)
        self._sent_ns = array("q", zeros)
        self._done_ns = array("q", zeros)
        self._status = array("H", bytes(2 * capacity))
        self.count = 0  # responses buffered since the last fold
        # Counters the engine increments directly (plain attributes: the cheapest update there is).
        self.sent = 0
        self.bytes_received = 0
        self.missed = 0
        self.corrected = LatencyHistogram()
        self.uncorrected = LatencyHistogram()
        self.lag = LatencyHistogram()
        self._status_counts = np.zeros(_STATUS_SLOTS, dtype=np.int64)
        self._errors = dict.fromkeys(ERROR_KINDS, 0)
        self._completed = 0
        self._late = 0
        self._connects = 0
        self._connect_us_total = 0
        self._connect_us_max = 0
        self._seq = 0
        self._cpu_mark_s = process_cpu_seconds()
        # Totals over all cuts, for the engine's outcome.
        self.total_completed = 0
        self.total_sent = 0
        self.total_missed = 0
        self.total_errors = dict.fromkeys(ERROR_KINDS, 0)
        self.total_cpu_s = 0.0

    # -- hot path ----------------------------------------------------------------------------------

    def record_response(self, planned_ns: int, sent_ns: int, done_ns: int, status: int) -> None:
        """One response (any status): planned instant, actual send, completion (monotonic ns)."""
        i = self.count
        self._planned_ns[i] = planned_ns
        self._sent_ns[i] = sent_ns
        self._done_ns[i] = done_ns
        self._status[i] = status if status < _STATUS_SLOTS else _STATUS_SLOTS - 1
        i += 1
        self.count = i
        if i == self.capacity:
            self.fold()

    # -- slow paths --------------------------------------------------------------------------------

    def record_error(self, kind: str, planned_ns: int = 0, sent_ns: int = 0) -> None:
        """A request that ended in a transport error of `kind` (one of ERROR_KINDS).

        When it had been sent, its schedule lag still counts (the generator's accuracy does not
        depend on what the server did)."""
        self._errors[kind] += 1
        if sent_ns:
            lag_us = max(sent_ns - planned_ns, 0) // 1000
            self.lag.record(lag_us)
            if lag_us > self.late_threshold_us:
                self._late += 1

    def record_connect(self, took_ns: int) -> None:
        """A connection set up in `took_ns` (connect and TLS handshake): its own figure, not lag."""
        took_us = max(took_ns, 0) // 1000
        self._connects += 1
        self._connect_us_total += took_us
        self._connect_us_max = max(self._connect_us_max, took_us)

    def record_missed(self, count: int) -> None:
        """Planned requests never sent before the run ended: `missed`, and errors of kind not_sent."""
        self.missed += count
        self._errors["not_sent"] += count

    def fold(self) -> None:
        """Move the buffered responses into the histograms (one numpy batch each)."""
        n = self.count
        if n == 0:
            return
        planned, sent, done = self._buffered_ns(n)
        lag_us = (sent - planned) // 1000
        self.corrected.record_batch((done - planned) // 1000)
        self.uncorrected.record_batch((done - sent) // 1000)
        self.lag.record_batch(lag_us)
        self._late += int(np.count_nonzero(lag_us > self.late_threshold_us))
        statuses = np.frombuffer(self._status, dtype=np.uint16, count=n)
        self._status_counts += np.bincount(statuses, minlength=_STATUS_SLOTS)
        self._completed += n
        self.count = 0

    def _buffered_ns(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views of the first `n` buffered (planned, sent, done) instants, monotonic ns."""
        return (
            np.frombuffer(self._planned_ns, dtype=np.int64, count=n),
            np.frombuffer(self._sent_ns, dtype=np.int64, count=n),
            np.frombuffer(self._done_ns, dtype=np.int64, count=n),
        )

    def cut(
        self,
        *,
        offset_s: float,
        duration_s: float,
        start_unix_ms: int,
        warmup: bool = False,
        final: bool = False,
    ) -> IntervalRecord:
        """The record of everything since the previous cut; then start afresh."""
        self.fold()
        cpu_now_s = process_cpu_seconds()
        cpu_s = cpu_now_s - self._cpu_mark_s
        self._cpu_mark_s = cpu_now_s
        codes = np.flatnonzero(self._status_counts)
        record = IntervalRecord(
            worker_id=self.worker_id,
            seq=self._seq,
            run_id=self.run_id,
            offset_s=offset_s,
            duration_s=duration_s,
            start_unix_ms=start_unix_ms,
            warmup=warmup,
            sent=self.sent,
            completed=self._completed,
            status_codes={self._status_name(int(code)): int(self._status_counts[code]) for code in codes},
            errors={kind: n for kind, n in self._errors.items() if n},
            bytes_received=self.bytes_received,
            late=self._late,
            missed=self.missed,
            cpu_seconds=round(cpu_s, 6),
            clock_offset_ms=self.clock_offset_ms,
            latency_corrected=self.corrected.encode(),
            latency_uncorrected=self.uncorrected.encode(),
            schedule_lag=self.lag.encode(),
            # Values beyond the histograms' range (in any of the three): the validity check flags them.
            clamped=self.corrected.clamped + self.uncorrected.clamped + self.lag.clamped,
            connects=self._connects,
            connect_us_total=self._connect_us_total,
            connect_us_max=self._connect_us_max,
            final=final,
        )
        self._add_to_totals(cpu_s)
        self._reset_interval()
        return record

    def _status_name(self, code: int) -> str:
        names = self.status_names
        return names[code] if code < len(names) else str(code)

    def _add_to_totals(self, cpu_s: float) -> None:
        self.total_completed += self._completed
        self.total_sent += self.sent
        self.total_missed += self.missed
        for kind, n in self._errors.items():
            self.total_errors[kind] += n
        self.total_cpu_s += cpu_s

    def _reset_interval(self) -> None:
        self._seq += 1
        self.sent = 0
        self.bytes_received = 0
        self.missed = 0
        self._completed = 0
        self._late = 0
        self._connects = self._connect_us_total = self._connect_us_max = 0
        self._status_counts[:] = 0
        self._errors = dict.fromkeys(ERROR_KINDS, 0)
        self.corrected.reset()
        self.uncorrected.reset()
        self.lag.reset()
