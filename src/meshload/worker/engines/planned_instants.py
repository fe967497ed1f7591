"""The open loop's clock for multiplexed engines (HTTP/2, gRPC): a share's planned instants, handed
over one by one the moment each comes due.

The schedule is materialised a chunk at a time (bounded memory at any rate) and due instants are
woken by a kernel timer (`pacing.DueTimer`), so the schedule lag stays well under a millisecond. An
engine may also call `send_due(now_ns)` after a response, which saves a timer wake-up at high rates.
(The HTTP/1.1 open loop walks its schedule inline, in its own hot path.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import monotonic_ns

from ...scenarios.schedule import ArrivalSchedule
from .pacing import DueTimer, IdleSink

#: How far ahead the arrival schedule is materialised (bounded memory at any rate).
PLAN_CHUNK_S = 0.05
#: Where the horizon starts: half a chunk before the run's start, so that chunks are taken half a
#: chunk away from the interval cuts (whole seconds). Taking a chunk between two sends costs about a
#: hundred microseconds with the loop's caches cold, and so does a cut's first piece: at the same
#: instant they would hold the same sends up together.
HORIZON_START_S = -PLAN_CHUNK_S / 2
NEVER_NS = 1 << 62


def take_chunk(schedule: ArrivalSchedule, horizon_s: float, start_ns: int) -> tuple[list[int], float]:
    """The planned instants (absolute monotonic ns) of the next non-empty chunk after `horizon_s`, and
    the new horizon; no instants once the schedule is exhausted."""
    while not schedule.exhausted:
        horizon_s += PLAN_CHUNK_S
        instants = schedule.take_until(horizon_s)
        if len(instants):
            return (instants + start_ns).tolist(), horizon_s
    return [], horizon_s


class PlannedInstants:
    """Calls `dispatch(planned_ns)` once for every planned instant of `schedule`, in order, when due.

    `finished` is set once the last instant is dispatched, or at `stop()`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        schedule: ArrivalSchedule,
        start_ns: int,
        dispatch: Callable[[int], None],
        idle_sink: IdleSink | None = None,
    ) -> None:
        self.schedule = schedule
        self.start_ns = start_ns
        self.dispatch = dispatch
        self.dispatched = 0
        self.next_due_ns = NEVER_NS
        self.finished = asyncio.Event()
        self._horizon_s = HORIZON_START_S
        self._batch: list[int] = []  # planned instants, absolute monotonic ns
        self._batch_i = 0
        self._stopped = False
        self._timer = DueTimer(loop, self._on_timer, idle_sink)

    async def run(self) -> None:
        """Dispatch every instant as it comes due; return once the last is dispatched (or at `stop()`)."""
        try:
            if not self._stopped:
                self.start()
                await self.finished.wait()
        finally:
            self.close()

    def start(self) -> None:
        """Arm the first instant (instants already due go at the first wake-up)."""
        if self._refill():
            self.next_due_ns = self._batch[0]
            self._timer.arm(self.next_due_ns)
        else:
            self.finished.set()

    def stop(self) -> None:
        """Dispatch nothing more."""
        self._stopped = True
        self.next_due_ns = NEVER_NS
        self.finished.set()

    def close(self) -> None:
        self._timer.close()

    def _on_timer(self) -> None:
        now_ns = monotonic_ns()
        if now_ns >= self.next_due_ns:
            self.send_due(now_ns)
        elif self.next_due_ns != NEVER_NS:
            self._timer.arm(self.next_due_ns)

    def _refill(self) -> bool:
        """Load the next chunk of planned instants; False when the schedule is exhausted."""
        self._batch, self._horizon_s = take_chunk(self.schedule, self._horizon_s, self.start_ns)
        self._batch_i = 0
        return bool(self._batch)

    def send_due(self, now_ns: int) -> None:
        """Dispatch every planned instant up to `now_ns`."""
        if self._stopped:
            return
        batch, i = self._batch, self._batch_i
        dispatch = self.dispatch
        while True:
            n = len(batch)
            while i < n and batch[i] <= now_ns:
                self.dispatched += 1
                dispatch(batch[i])
                i += 1
            if i < n or not self._refill():
                break
            batch, i = self._batch, 0
        if self._stopped:  # a dispatch stopped the run
            return
        self._batch, self._batch_i = batch, i
        if i < len(batch):
            self.next_due_ns = batch[i]
            self._timer.arm(self.next_due_ns)
        else:
            self.next_due_ns = NEVER_NS
            self.finished.set()
