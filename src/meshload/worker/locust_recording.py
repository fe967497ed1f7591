"""Recording the requests of Locust users in one process: a Locust process that runs users with the
plugin (a Locust worker, or the single process of a local run), or a meshload worker's Locust engine.

Every request event goes into a `NamedIntervalRecorder`; a greenlet cuts an interval record every
second, counted from the test's start (the same instant on every worker, and exactly at the end of
the warm-up too), and hands it to the sink: the Redis publisher on a Locust worker, the merge itself
in a local Locust run, the pipe to the meshload worker for the engine. When the test begins to stop,
the open-loop pacers stop too and report the planned instants no task took before then (missed);
when it has stopped, the final record goes out.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gevent

from ..results.interval import IntervalRecord
from .intervals import is_warmup
from .locust_events import LocustRequestRecorder
from .named_recorder import NamedIntervalRecorder
from .task_pacer import GEVENT_LATE_THRESHOLD_US, TaskPacer

log = logging.getLogger(__name__)

#: Interval records are cut this often.
INTERVAL_S = 1.0
_EPSILON_S = 1e-9


@dataclass(frozen=True)
class Share:
    """This process's part of the open-loop schedules: share `index` of `count`."""

    index: int
    count: int


class NodeRecording:
    """One test's recording on one process; `start()` when the test starts, `finish()` when it stops."""

    def __init__(
        self,
        *,
        request_event: object,
        worker_id: str,
        run_id: str,
        start_ns: int,
        schedule_lead_s: float,
        sink: Callable[[IntervalRecord], None],
        pacers: Sequence[TaskPacer],
        share: Share | None,
        warmup_s: float = 0.0,
        clock_offset_ms: float = 0.0,
        seed: int = 0,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self.recorder = NamedIntervalRecorder(
            worker_id=worker_id,
            run_id=run_id,
            clock_offset_ms=clock_offset_ms,
            late_threshold_us=GEVENT_LATE_THRESHOLD_US,
        )
        self._listener = LocustRequestRecorder(self.recorder).on_request
        self._request_event = request_event  # Locust's EventHook for `request`
        self.start_ns = start_ns  # the test's start: the origin of the records' offsets
        self._schedule_start_ns = start_ns + round(schedule_lead_s * 1e9)
        self._sink = sink
        self._pacers = pacers
        self._share = share
        self._warmup_s = warmup_s
        self._seed = seed
        self._interval_s = interval_s
        # The wall-clock instant of `start_ns`, for the records' timestamps.
        self._start_unix_ns = time.time_ns() + (start_ns - time.monotonic_ns())
        self._cut_s = 0.0  # the end of the last record, seconds after the start instant
        self._ticker: gevent.Greenlet | None = None
        self._stopping_ns: int | None = None
        self.records = 0

    def start(self) -> None:
        self._request_event.add_listener(self._listener)  # type: ignore[attr-defined]
        if self._share is not None:
            for pacer in self._pacers:
                pacer.begin(
                    index=self._share.index, count=self._share.count, start_ns=self._schedule_start_ns, seed=self._seed
                )
        self._ticker = gevent.spawn(self._tick)

    def stopping(self, stopping_ns: int) -> None:
        """The test begins to stop at `stopping_ns` (monotonic): Locust stops the users now, so the
        instants planned from here on are nobody's; those planned before and never taken are missed."""
        if self._stopping_ns is not None:
            return
        self._stopping_ns = stopping_ns
        missed = sum(pacer.end(stopping_ns) for pacer in self._pacers)
        if missed:
            self.recorder.record_missed(missed)

    def finish(self, stop_ns: int) -> IntervalRecord:
        """Stop recording and hand over the final record. It ends now, not where the stop began: the
        requests that ended while the users stopped are in it, and so is the CPU spent stopping them
        (an interval shorter than its CPU time would read as a saturated worker)."""
        self.stopping(stop_ns)
        if self._ticker is not None:
            self._ticker.kill(block=True)
        self._request_event.remove_listener(self._listener)  # type: ignore[attr-defined]
        end_s = max((time.monotonic_ns() - self.start_ns) / 1e9, self._cut_s)
        return self._cut(end_s, final=True)

    def _tick(self) -> None:
        while True:
            boundary_s = self._next_boundary_s()
            gevent.sleep(max(self.start_ns + round(boundary_s * 1e9) - time.monotonic_ns(), 0) / 1e9)
            self._cut(boundary_s)

    def _next_boundary_s(self) -> float:
        following = (math.floor(self._cut_s / self._interval_s + _EPSILON_S) + 1) * self._interval_s
        if self._cut_s + _EPSILON_S < self._warmup_s < following - _EPSILON_S:
            return self._warmup_s
        return following

    def _cut(self, end_s: float, *, final: bool = False) -> IntervalRecord:
        begin_s = self._cut_s
        record = self.recorder.cut(
            offset_s=begin_s,
            duration_s=end_s - begin_s,
            start_unix_ms=(self._start_unix_ns + round(begin_s * 1e9)) // 1_000_000,
            warmup=is_warmup(end_s, self._warmup_s),
            final=final,
        )
        self._cut_s = end_s
        self.records += 1
        self._sink(record)
        return record
