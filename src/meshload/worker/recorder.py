"""Per-interval recording of one worker's requests, cut into `IntervalRecord`s.

The hot path (`record_response`, compiled in `worker.hot_path`: `RecorderCore`) only stores four
machine integers per response into preallocated int64 arrays, the `buffers`. They are folded into
three HDR histograms with one numpy batch per fold: when they fill up, and at every interval cut.
Nothing grows with the number of requests: memory is fixed by `capacity`.

An engine on an event loop cuts in two parts (`detach`, then `PendingRecord.steps`): the interval's
buffers and histograms are swapped with a spare set at once, and the slow part (folding, encoding)
runs afterwards in small steps the loop interleaves with its sends, so a cut never holds a send up.
At high rates `OffloadedRecorder` (`worker.offloaded_recorder`) leaves the folding and encoding to the
worker's fold process.

Every request ends exactly one way: a response (any HTTP status, or any gRPC status, recorded in the
latency histograms) or an error of one of `ERROR_KINDS` (counted, kept out of the latency histograms).
Statuses are small integers on the hot path; a record names them by their number (HTTP) or by the
`status_names` the engine gives (gRPC: "OK", "UNAVAILABLE", ...).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import ClassVar

import numpy as np

from ..results.histogram import RECORD_ENCODE_LEVEL, LatencyHistogram
from ..results.interval import ERROR_KINDS, IntervalRecord, encode_record
from .cpu import process_cpu_seconds
from .hot_path import RecorderCore
from .socket_bytes import SocketEvents

#: A send this far behind its planned instant counts as `late` (the generator's own accuracy goal).
LATE_THRESHOLD_US = 1_000
#: Responses buffered between folds: small enough that each step of a fold costs a fraction of a
#: millisecond, large enough that what a fold costs whatever its size stays a few ns per response.
DEFAULT_CAPACITY = 4_096
#: HTTP status codes are counted in a table of this size; anything above goes to the last slot.
_STATUS_SLOTS = 1_000


class IntervalRecorder(RecorderCore):
    """Records responses and errors; `cut()` turns what was recorded since the last cut into a record."""

    #: Whether the histograms are folded in this process (six of them, 15 ms and 2 MB to build): not
    #: where a fold process does it (`OffloadedRecorder`).
    folds_histograms: ClassVar[bool] = True

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
        self.buffers = _buffers(capacity)
        self.count = 0  # responses buffered since the last fold
        # Counters the engine increments directly (plain attributes: the cheapest update there is).
        self.sent = 0
        self.bytes_received = 0
        #: Set when the fold process counts what the engine's sockets receive (`worker.socket_bytes`):
        #: their connections then say here when they open and close instead of adding to `bytes_received`.
        self.socket_events: SocketEvents | None = None
        self.missed = 0
        # Loop passes spent polling for a planned instant too near to sleep for (`pacing.DueTimer`).
        self.spin_ns = 0
        self._spin_mark_ns = 0
        if self.folds_histograms:
            self.corrected = LatencyHistogram()
            self.uncorrected = LatencyHistogram()
            self.lag = LatencyHistogram()
        self._status_counts = new_status_counts()
        self._errors = dict.fromkeys(ERROR_KINDS, 0)
        self._completed = 0
        self._late = 0
        self._connects = 0
        self._connect_us_total = 0
        self._connect_us_max = 0
        self._seq = 0
        self._cpu_mark_s = process_cpu_seconds()
        self._cpu_unread: IntervalCounts | None = None  # the counts of a cut that left its CPU for later
        # What `detach` swaps in: buffers and histograms as above, given back by the pending record
        # once it has been finished (allocated once: building a histogram is slow).
        self._spare: _Set | None = None
        if self.folds_histograms:
            self._spare = _Set(_buffers(capacity), (LatencyHistogram(), LatencyHistogram(), LatencyHistogram()))
        #: Set by an engine on an event loop (its `call_soon`): a full buffer is then folded in steps the
        #: loop takes between its callbacks, while recording goes on into a spare buffer.
        self.defer: Callable[[Callable[[], None]], object] | None = None
        self._spare_buffers: _Buffers | None = _buffers(capacity)
        self._folding: Generator[None, None, int] | None = None  # a full buffer being folded in steps
        # Totals over all cuts, for the engine's outcome.
        self.total_completed = 0
        self.total_sent = 0
        self.total_missed = 0
        self.total_errors = dict.fromkeys(ERROR_KINDS, 0)
        self.total_cpu_s = 0.0
        self.total_spin_s = 0.0

    # -- slow paths --------------------------------------------------------------------------------

    def record_error(self, kind: str, planned_ns: int = 0, sent_ns: int = 0) -> None:
        """A request that ended in a transport error of `kind` (one of ERROR_KINDS).

        When it had been sent, its schedule lag still counts (the generator's accuracy does not
        depend on what the server did)."""
        self._errors[kind] += 1
        if sent_ns:
            lag_us = max(sent_ns - planned_ns, 0) // 1000
            self._record_error_lag(lag_us)
            if lag_us > self.late_threshold_us:
                self._late += 1

    def _record_error_lag(self, lag_us: int) -> None:
        self.lag.record(lag_us)

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

    def _full(self) -> None:
        """The buffer is full: fold it in deferred steps if the engine can run them, else now."""
        spare = self._spare_buffers
        if self.defer is None or spare is None or type(self).fold is not IntervalRecorder.fold:
            self.fold()
            return
        n = self.count
        full = self.buffers
        self.buffers = spare
        self._spare_buffers = None
        self.count = 0
        self._completed += n
        # The histograms and counts are those of the interval the responses belong to, bound now.
        self._folding = self._fold_aside(full, self._buffer_fold_steps(n, full))
        self.defer(self._fold_step)

    def _buffer_fold_steps(self, n: int, buffers: _Buffers) -> Generator[None, None, int]:
        """The steps that fold `n` responses of `buffers` into the current interval (bound at the
        call); they return how many were sent late."""
        histograms = (self.corrected, self.uncorrected, self.lag)
        return _fold_steps(n, buffers, histograms, self._status_counts, self.late_threshold_us)

    def _fold_aside(self, full: _Buffers, steps: Generator[None, None, int]) -> Generator[None, None, int]:
        late = yield from steps
        self._spare_buffers = full
        return late

    def _fold_step(self) -> None:
        folding = self._folding
        if folding is None:
            return  # finished already, or taken over by a cut
        try:
            next(folding)
        except StopIteration as end:
            self._folding = None
            self._late += int(end.value)
            return
        assert self.defer is not None
        self.defer(self._fold_step)

    def fold(self) -> None:
        """Move the buffered responses into the histograms (one numpy batch each)."""
        folding, self._folding = self._folding, None
        if folding is not None:
            self._late += exhaust(folding)
        n = self.count
        if n == 0:
            return
        self._late += exhaust(self._buffer_fold_steps(n, self.buffers))
        self._completed += n
        self.count = 0

    def _buffered_ns(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first `n` buffered (planned, sent, done) instants, monotonic ns."""
        return _instants(n, self.buffers)

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
        return self.detach(
            offset_s=offset_s, duration_s=duration_s, start_unix_ms=start_unix_ms, warmup=warmup, final=final
        ).finish()

    def detach(
        self,
        *,
        offset_s: float,
        duration_s: float,
        start_unix_ms: int,
        warmup: bool = False,
        final: bool = False,
    ) -> PendingRecord:
        """Close the interval at once, in constant time: its buffered responses and histograms move
        to the returned `PendingRecord` (recording goes on into a spare set); its record is made by
        the pending record's steps. One pending record at a time: finish it before the next cut."""
        spare = self._spare
        if spare is None:
            raise RuntimeError("the previous interval's pending record is not finished yet")
        if type(self).fold is not IntervalRecorder.fold:
            self.fold()  # a subclass folds more than the histograms: not in steps
        self._spare = None
        folding, self._folding = self._folding, None  # a full buffer of this interval still folding
        n = self.count
        pending = PendingRecord(
            self,
            folding,
            n,
            _Set(self.buffers, (self.corrected, self.uncorrected, self.lag)),
            self._close_interval(
                n, offset_s=offset_s, duration_s=duration_s, start_unix_ms=start_unix_ms, warmup=warmup, final=final
            ),
            self._status_counts,
            self._late,
        )
        self._reset_interval()
        self.buffers = spare.buffers
        self.corrected, self.uncorrected, self.lag = spare.histograms
        self._status_counts = new_status_counts()
        self.count = 0
        return pending

    def _close_interval(
        self, n: int, *, offset_s: float, duration_s: float, start_unix_ms: int, warmup: bool, final: bool
    ) -> IntervalRecord:
        """The interval's record, counters filled in and its histograms still to come, `n` responses
        still buffered; the interval's counts go to the totals (the caller resets them after)."""
        return self._record_of(
            self._interval_counts(n),
            offset_s=offset_s,
            duration_s=duration_s,
            start_unix_ms=start_unix_ms,
            warmup=warmup,
            final=final,
        )

    def _interval_counts(self, n: int, *, read_cpu: bool = True) -> IntervalCounts:
        """The interval's counters as they are now, `n` responses still buffered (the caller resets
        them after): the little a cut must read at its instant, its record made from them later.
        `read_cpu=False` leaves its CPU to `_read_cpu`, a system call the cut can do without: the
        interval then ends, for its CPU alone, where that call is made (the next one starts there)."""
        self._read_cpu()  # the previous interval's, should its cut have left it for later
        self._completed += n
        counts = IntervalCounts(
            self._seq,
            self.sent,
            self._completed,
            self._errors,
            self.bytes_received,
            self.missed,
            self._late,
            (self._connects, self._connect_us_total, self._connect_us_max),
        )
        self._cpu_unread = counts
        if read_cpu:
            self._read_cpu()
        return counts

    def _read_cpu(self) -> None:
        """The CPU of the interval whose counts still lack it: what the process used up to now."""
        counts, self._cpu_unread = self._cpu_unread, None
        if counts is None:
            return
        cpu_now_s = process_cpu_seconds()
        counts.cpu_s = cpu_now_s - self._cpu_mark_s
        self._cpu_mark_s = cpu_now_s
        # The polling is part of the CPU; the CPU clock's 10 ms ticks can make a short interval's read less.
        counts.spin_s = min((self.spin_ns - self._spin_mark_ns) / 1e9, counts.cpu_s)
        self._spin_mark_ns = self.spin_ns

    def _record_of(
        self,
        counts: IntervalCounts,
        *,
        offset_s: float,
        duration_s: float,
        start_unix_ms: int,
        warmup: bool,
        final: bool,
    ) -> IntervalRecord:
        """The record of an interval's `counts` (histograms still to come); they go to the totals."""
        if counts is self._cpu_unread:
            self._read_cpu()
        connects, connect_us_total, connect_us_max = counts.connects
        record = IntervalRecord(
            worker_id=self.worker_id,
            seq=counts.seq,
            run_id=self.run_id,
            offset_s=offset_s,
            duration_s=duration_s,
            start_unix_ms=start_unix_ms,
            warmup=warmup,
            sent=counts.sent,
            completed=counts.completed,
            errors={kind: count for kind, count in counts.errors.items() if count},
            bytes_received=counts.bytes_received,
            missed=counts.missed,
            cpu_seconds=round(counts.cpu_s, 6),
            spin_seconds=round(counts.spin_s, 6),
            clock_offset_ms=self.clock_offset_ms,
            connects=connects,
            connect_us_total=connect_us_total,
            connect_us_max=connect_us_max,
            final=final,
            late=counts.late,  # so far; the responses' late sends are added where they are folded
        )
        self.total_completed += counts.completed
        self.total_sent += counts.sent
        self.total_missed += counts.missed
        for kind, count in counts.errors.items():
            self.total_errors[kind] += count
        self.total_cpu_s += counts.cpu_s
        self.total_spin_s += counts.spin_s
        return record

    def _reset_interval(self) -> None:
        self._seq += 1
        self.sent = 0
        self.bytes_received = 0
        self.missed = 0
        self._completed = 0
        self._late = 0
        self._connects = self._connect_us_total = self._connect_us_max = 0
        self._errors = dict.fromkeys(ERROR_KINDS, 0)


class IntervalCounts:
    """An interval's counters, read at its cut (`IntervalRecorder._interval_counts`)."""

    __slots__ = (
        "bytes_received",
        "completed",
        "connects",
        "cpu_s",
        "errors",
        "late",
        "missed",
        "sent",
        "seq",
        "spin_s",
    )

    def __init__(
        self,
        seq: int,
        sent: int,
        completed: int,
        errors: dict[str, int],
        bytes_received: int,
        missed: int,
        late: int,
        connects: tuple[int, int, int],
    ) -> None:
        self.seq = seq
        self.sent = sent
        self.completed = completed
        self.errors = errors  # the interval's own dict: `_reset_interval` starts a new one
        self.bytes_received = bytes_received
        self.missed = missed
        self.late = late  # sends later than the threshold counted so far (the errors' ones, aside)
        self.connects = connects  # count, total µs, longest µs
        # Filled in by `IntervalRecorder._read_cpu`: at the cut, or just after it.
        self.cpu_s = 0.0
        self.spin_s = 0.0


#: A recorder's buffers: planned, sent and done instants (monotonic ns) and statuses, a row per response.
_Buffers = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _buffers(capacity: int) -> _Buffers:
    return (
        np.zeros(capacity, dtype=np.int64),
        np.zeros(capacity, dtype=np.int64),
        np.zeros(capacity, dtype=np.int64),
        np.zeros(capacity, dtype=np.int64),
    )


def _instants(n: int, buffers: _Buffers) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first `n` buffered (planned, sent, done) instants, monotonic ns (views of the buffers)."""
    return buffers[0][:n], buffers[1][:n], buffers[2][:n]


class _Set:
    """One interval's buffers and its corrected, uncorrected and lag histograms."""

    __slots__ = ("buffers", "histograms")

    def __init__(self, buffers: _Buffers, histograms: tuple[LatencyHistogram, LatencyHistogram, LatencyHistogram]):
        self.buffers = buffers
        self.histograms = histograms


class PendingRecord:
    """A detached interval: `steps()` folds what it still buffers and encodes its histograms, a little
    per step (each well under a millisecond); then `record` is complete and the buffers and histograms
    go back to the recorder, emptied, as its spare set."""

    def __init__(
        self,
        recorder: IntervalRecorder,
        folding: Generator[None, None, int] | None,
        buffered: int,
        detached: _Set,
        record: IntervalRecord,
        status_counts: np.ndarray,
        late: int,
    ) -> None:
        self.record = record
        self.done = False
        self._steps = self._make(recorder, folding, buffered, detached, status_counts, late)

    def steps(self) -> Iterator[None]:
        """Yields between the steps; when exhausted, `record` is complete."""
        return self._steps

    def finish(self) -> IntervalRecord:
        """Take the remaining steps now; the complete record."""
        for _ in self._steps:
            pass
        return self.record

    @property
    def ready(self) -> bool:
        """Whether `record` is complete."""
        return self.done

    def result(self) -> IntervalRecord:
        """The complete record (once `ready`)."""
        return self.record

    def encoded(self) -> bytes:
        """The complete record as `encode_record` makes it (once `ready`)."""
        return encode_record(self.result())

    def when_ready(self, callback: Callable[[], object]) -> None:
        """Call `callback` (on the loop) once `record` is complete; here, that is after the steps."""

    async def completed(self, *, now: bool = True) -> IntervalRecord:
        """The complete record, once the remaining steps are taken (here: at once, `now` or not)."""
        return self.finish()

    def _make(
        self,
        recorder: IntervalRecorder,
        folding: Generator[None, None, int] | None,
        n: int,
        detached: _Set,
        status_counts: np.ndarray,
        late: int,
    ) -> Iterator[None]:
        if folding is not None:
            late += yield from folding
            yield
        if n:
            late += yield from _fold_steps(
                n, detached.buffers, detached.histograms, status_counts, recorder.late_threshold_us
            )
            yield
        yield from completion_steps(self.record, detached.histograms, status_counts, late, recorder.status_names)
        recorder._spare = detached
        self.done = True


def completion_steps(
    record: IntervalRecord,
    histograms: tuple[LatencyHistogram, LatencyHistogram, LatencyHistogram],
    status_counts: np.ndarray,
    late: int,
    status_names: tuple[str, ...],
) -> Iterator[None]:
    """Complete `record` from its interval's folded histograms and counts, in steps of at most one
    histogram's 2 KB of compression; the histograms are emptied for the next use."""
    corrected, uncorrected, lag = histograms
    record.late = late
    codes = np.flatnonzero(status_counts)
    record.status_codes = {_status_name(status_names, int(code)): int(status_counts[code]) for code in codes}
    yield
    record.latency_corrected = yield from corrected.encode_steps(RECORD_ENCODE_LEVEL)
    yield
    record.latency_uncorrected = yield from uncorrected.encode_steps(RECORD_ENCODE_LEVEL)
    yield
    record.schedule_lag = yield from lag.encode_steps(RECORD_ENCODE_LEVEL)
    yield
    # Values beyond the histograms' range (in any of the three): the validity check flags them.
    record.clamped = corrected.clamped + uncorrected.clamped + lag.clamped
    for histogram in histograms:
        histogram.reset()
        yield


def _status_name(names: tuple[str, ...], code: int) -> str:
    """How a record names status `code`: `names[code]`, or (none given) the number itself."""
    return names[code] if code < len(names) else str(code)


def _fold_steps(
    n: int,
    buffers: _Buffers,
    histograms: tuple[LatencyHistogram, LatencyHistogram, LatencyHistogram],
    status_counts: np.ndarray,
    late_threshold_us: int,
) -> Generator[None, None, int]:
    """Fold `n` buffered responses into the histograms and status counts, one histogram batch per
    step; returns how many were sent late."""
    planned, sent, done = _instants(n, buffers)
    statuses = buffers[3][:n]
    return (yield from fold_instants_steps(planned, sent, done, statuses, histograms, status_counts, late_threshold_us))


def fold_instants_steps(
    planned: np.ndarray,
    sent: np.ndarray,
    done: np.ndarray,
    statuses: np.ndarray,
    histograms: tuple[LatencyHistogram, LatencyHistogram, LatencyHistogram],
    status_counts: np.ndarray,
    late_threshold_us: int,
) -> Generator[None, None, int]:
    """Fold responses given as arrays of their (planned, sent, done) instants (monotonic ns) and
    statuses, one histogram batch per step; returns how many were sent late."""
    corrected, uncorrected, lag = histograms
    corrected.record_batch((done - planned) // 1000)
    yield
    uncorrected.record_batch((done - sent) // 1000)
    yield
    lag_us = (sent - planned) // 1000
    lag.record_batch(lag_us)
    yield
    status_counts += np.bincount(np.minimum(statuses, _STATUS_SLOTS - 1), minlength=_STATUS_SLOTS)
    return int(np.count_nonzero(lag_us > late_threshold_us))


def new_status_counts() -> np.ndarray:
    """An interval's count of each status, all zero (statuses past the last slot share it)."""
    return np.zeros(_STATUS_SLOTS, dtype=np.int64)


def exhaust(steps: Generator[None, None, int]) -> int:
    """Take every step now; the value the steps return."""
    while True:
        try:
            next(steps)
        except StopIteration as end:
            return int(end.value)
