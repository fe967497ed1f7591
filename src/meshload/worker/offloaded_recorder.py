"""Recording whose histograms are folded in the worker's fold process (`worker.fold_process`).

On the engine's loop an `OffloadedRecorder` does what an `IntervalRecorder` does up to the arrays:
the hot path stores four integers per response into int64 arrays. Then, instead of histogram
batches, status counts and three compressions, a full buffer's rows go to the fold process, in a
step between the loop's callbacks. A cut
is a boundary in the buffer: its responses go with the buffer when it is full, then its counters,
and its complete record comes back on the loop. Every response is folded once, into its interval.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import numpy as np

from ..errors import RunError
from ..results.interval import IntervalRecord, decode_record
from ..scenarios.plan import OpenLoop
from ..scenarios.schedule import WorkerShare
from .fold_channel import FoldChannel
from .fold_frames import encode_cut
from .recorder import IntervalRecorder, PendingRecord, _Buffers, exhaust


class _Cut:
    """A closed interval whose last responses are still in the buffer, before row `row`: its counters
    as read at the cut, its record made from them when its counters are sent (`record_of`)."""

    __slots__ = ("error_lags_us", "record_of", "row", "seq")

    def __init__(self, row: int, seq: int, record_of: Callable[[], IntervalRecord], error_lags_us: list[int]) -> None:
        self.row = row
        self.seq = seq
        self.record_of = record_of
        self.error_lags_us = error_lags_us


class OffloadedRecorder(IntervalRecorder):
    """An `IntervalRecorder` that leaves its histograms to the fold process behind `channel`.

    A cut costs the loop no conversion: the interval's last responses stay in the buffer, which goes
    on filling with the next interval's behind a boundary, and are sent with it when it is full (then
    the cut's counters follow). An interval's record thus comes back within the time the buffer takes
    to fill; at a rate too low to fill it within an interval, the next cut sends it at once."""

    folds_histograms = False

    def __init__(self, channel: FoldChannel, **settings: Any) -> None:
        super().__init__(**settings)
        self.channel = channel
        channel.configure(status_names=self.status_names, late_threshold_us=self.late_threshold_us)
        # Lags (µs) of the requests that ended in an error after being sent, since the last cut.
        self._error_lags_us: list[int] = []
        self._cuts: list[_Cut] = []  # the closed intervals whose last responses are in the buffer
        self._counted = 0  # buffered responses already counted in a closed interval's `completed`
        # The sockets' events of the cuts not yet sent (`socket_events`), oldest first: sent just after
        # the cut, in a callback of their own, and always before the cut's counters.
        self._socket_frames: list[tuple[int, list[tuple[int, int]], list[tuple[int, int]]]] = []

    def _record_error_lag(self, lag_us: int) -> None:
        self._error_lags_us.append(lag_us)

    def _full(self) -> None:
        """The buffer is full: send it in steps between the loop's callbacks (or now, see `fold`)."""
        spare = self._spare_buffers
        if self.defer is None or spare is None:
            self.fold()
            return
        self._spare_buffers = None
        self._folding = self._take(spare)
        self.defer(self._fold_step)

    def fold(self) -> None:
        """Send everything buffered now (after what is being sent already)."""
        folding, self._folding = self._folding, None
        if folding is not None:
            exhaust(folding)
        if self.count or self._cuts:
            spare = self._spare_buffers
            assert spare is not None  # given back by the sending just finished
            self._spare_buffers = None
            exhaust(self._take(spare))

    def _send_socket_frames(self) -> None:
        """Send the cuts' socket events that are waiting, for the fold process to count their bytes
        at once (before their counters, which it completes the records with)."""
        frames, self._socket_frames = self._socket_frames, []
        for seq, opened, closed in frames:
            self.channel.send_sockets(seq, opened, closed)

    def _take(self, replacement: _Buffers) -> Generator[None, None, int]:
        """Record into `replacement` from now on; the steps that send the buffer taken, bound now."""
        n, seq, cuts = self.count, self._seq, self._cuts
        buffers = self.buffers
        self._completed += n - self._counted
        self._counted = 0
        self._cuts = []
        self.buffers = replacement
        self.count = 0
        return self._send_steps(n, buffers, cuts, seq)

    def _send_steps(self, n: int, buffers: _Buffers, cuts: list[_Cut], seq: int) -> Generator[None, None, int]:
        """Send `n` buffered responses, a step for each part sent as its interval's (the rows before
        each cut's boundary are that cut's; the rest are interval `seq`'s), then the cuts' counters.
        The fold process counts the late sends (0 here)."""
        start = 0
        for end, part_seq in [*((cut.row, cut.seq) for cut in cuts), (n, seq)]:
            if end > start:
                # The part's rows of the four buffers, one column after the other.
                self.channel.send_fold(part_seq, np.concatenate([column[start:end] for column in buffers]))
                yield
            start = end
        self._send_socket_frames()
        for cut in cuts:  # (`late` so far: sends that ended in an error; the fold process adds the responses')
            self.channel.send_cut(cut.seq, encode_cut(cut.record_of(), cut.error_lags_us))
        self._spare_buffers = buffers
        return 0

    def detach(
        self,
        *,
        offset_s: float,
        duration_s: float,
        start_unix_ms: int,
        warmup: bool = False,
        final: bool = False,
    ) -> PendingRecord:
        """Close the interval at once, in constant time, as `IntervalRecorder.detach`: a boundary in
        the buffer and the counters as they are (the record is made when they are sent, away from
        the cut's instant); the returned record completes when the fold process answers."""
        row = self.count
        # The process's CPU is read just after the cut, in a piece of its own: a system call, and on a
        # loop that has just woken (its caches cold) one of the costlier parts of a cut.
        defer = None if final else self.defer
        counts = self._interval_counts(row - self._counted, read_cpu=defer is None)
        if defer is not None:
            defer(self._read_cpu)
        self._counted = row
        seq = counts.seq
        error_lags_us, self._error_lags_us = self._error_lags_us, []
        reply = self.channel.reply_for(seq)
        if self.socket_events is not None:
            self._socket_frames.append((seq, *self.socket_events.take()))
            if self.defer is None:
                self._send_socket_frames()
            elif not final:  # (a final cut sends them with its counters, below)
                self.defer(self._send_socket_frames)  # the write is a piece of its own
        record_of = partial(
            self._record_of,
            counts,
            offset_s=offset_s,
            duration_s=duration_s,
            start_unix_ms=start_unix_ms,
            warmup=warmup,
            final=final,
        )
        self._cuts.append(_Cut(row, seq, record_of, error_lags_us))
        self._reset_interval()
        if final:
            self.fold()  # the run is over: nothing to spare
        elif len(self._cuts) > 1:
            self._full()  # an interval went by without the buffer filling: send it now, in steps
        return ShippedRecord(reply, flush=self.fold)


class ShippedRecord(PendingRecord):
    """A detached interval of an `OffloadedRecorder`: complete when the fold process answers (its
    responses and counters are sent with the buffer); `completed(now=True)` sends them at once. The
    answer is the record encoded: `encoded()` passes it on as it came, `result()` decodes it."""

    def __init__(self, reply: asyncio.Future[bytes], *, flush: Callable[[], None]) -> None:
        self.done = False
        self._reply = reply
        self._flush = flush
        self._steps = iter(())

    @property
    def ready(self) -> bool:
        reply = self._reply
        return reply.done() and not reply.cancelled() and reply.exception() is None

    def result(self) -> IntervalRecord:
        return self.record if self.done else decode_record(self._reply.result())

    def encoded(self) -> bytes:
        return self._reply.result()

    def when_ready(self, callback: Callable[[], object]) -> None:
        self._reply.add_done_callback(lambda _: callback())

    def finish(self) -> IntervalRecord:
        raise RuntimeError("the fold process completes this record: await completed() on the loop")

    async def completed(self, *, now: bool = True) -> IntervalRecord:
        if now and not self._reply.done():
            self._flush()
        # Shielded: a cancelled waiter must leave the answer to whoever completes the record next.
        await asyncio.shield(self._reply)
        self.record = self.result()
        self.done = True
        return self.record


#: An open loop planned at this many requests per second per worker, or more, folds its histograms in
#: a fold process; below it, a cut's pieces are far apart from the sends and a process is not worth it.
FOLD_PROCESS_MIN_RATE = 5_000.0
#: The environment variable that overrides that choice: "always" or "never" ("auto" by default).
FOLD_PROCESS_ENV = "MESHLOAD_FOLD_PROCESS"


def wants_fold_process(share: WorkerShare) -> bool:
    """Whether an engine on an event loop should fold `share`'s histograms in a fold process."""
    return wants_at_high_rate(FOLD_PROCESS_ENV, share)


def wants_at_high_rate(env: str, share: WorkerShare) -> bool:
    """`env` ("always", "never", or "auto" by default) says; on "auto", whether `share` is an open
    loop at `FOLD_PROCESS_MIN_RATE` per worker or more. Any other value is one clear error."""
    choice = os.environ.get(env, "auto").strip().lower()
    if choice not in ("auto", "always", "never"):
        raise RunError(f"{env}={choice!r} is not one of auto, always, never: set one or unset it")
    if choice != "auto":
        return choice == "always"
    return high_rate_share(share, FOLD_PROCESS_MIN_RATE)


def high_rate_share(share: WorkerShare, rate: float) -> bool:
    """Whether `share` is an open loop whose peak rate per worker is `rate` or more."""
    load = share.plan.load
    if not isinstance(load, OpenLoop):
        return False
    peak_rate = max([load.rate, *(stage.rate for stage in load.stages)])
    return peak_rate / share.count >= rate
