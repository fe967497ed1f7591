"""HTTP/1.1 open loop: each request leaves at its planned instant, on a free keep-alive connection.

Every measurement uses `time.monotonic_ns()`; the loop's own clock ticks in milliseconds. If no
connection is free, the send waits in its origin's queue (that wait is charged to the corrected
latency) while, up to `plan.max_connections`, another connection is opened. Due sends are checked
by a kernel timer (`pacing.DueTimer`) and again after every response, so the schedule lag stays well
under a millisecond at high rates.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from time import monotonic_ns

from ...scenarios.plan import OpenLoop
from ...scenarios.schedule import ArrivalSchedule
from ..hot_path import ConnectionCore, OpenLoopControl, OpenLoopDispatcher, PoolCore
from ..recorder import IntervalRecorder
from .base import EngineJob
from .http1_runner import DRAIN_POLL_S, Http1Runner
from .http_connection import HttpConnection
from .pacing import DueTimer
from .planned_instants import HORIZON_START_S, take_chunk

#: Connections opened per origin before the start instant, so the first sends find one: at least
#: this many, and one more per `PREWARM_RATE_PER_CONNECTION` planned requests per second.
PREWARM_CONNECTIONS = 4
PREWARM_RATE_PER_CONNECTION = 2_000
#: Connects in flight per origin at once. Opening a connection costs the loop far more than a
#: request; unbounded, a short hiccup would trigger a storm of connects that itself delays
#: responses and triggers more connects.
MAX_CONCURRENT_CONNECTS = 4
_NEVER = 1 << 62


class OpenLoopConnection(HttpConnection):
    """A response frees the connection for the oldest waiting send, or parks it."""

    __slots__ = ()

    #: The hottest path of the engine, compiled (`worker.hot_path`): records the response, hands the
    #: connection on, and sends what has come due if the response arrived after the next planned instant.
    on_message_complete = ConnectionCore.open_loop_message_complete

    def __init__(self, runner: OpenLoopRunner, recorder: IntervalRecorder, pool: Pool, *, tls: bool) -> None:
        super().__init__(runner, recorder, pool.index, tls=tls)
        self.runner = runner
        self.open_loop = runner.control
        self.pool = pool


class Pool(PoolCore):
    """One origin's connections and the sends waiting for one."""

    __slots__ = ("cap", "connecting", "index", "open")

    def __init__(self, index: int, cap: int) -> None:
        self.index = index
        self.idle: list[HttpConnection] = []
        # (planned_ns, payload, ready_ns), oldest first; ready_ns: when the generator was ready to send
        # it and only a connection being set up kept it (0: it waits for a busy connection).
        self.pending: deque[tuple[int, bytes, int]] = deque()
        self.open = 0  # connecting + established
        self.connecting = 0
        self.cap = cap


class OpenLoopRunner(Http1Runner):
    def __init__(self, job: EngineJob, stop: asyncio.Event | None) -> None:
        super().__init__(job, stop)
        cap = max(1, self.plan.max_connections // len(self.origins))
        self.pools = [Pool(i, cap) for i in range(len(self.origins))]
        self.schedule: ArrivalSchedule = self.share.schedule()
        self.horizon_s = HORIZON_START_S
        self.batch: list[int] = []  # planned instants, absolute monotonic ns
        self.batch_i = 0
        # The next planned instant (`next_due_ns`) and whether waiting sends may still go out
        # (`accepting_sends`, false once they are abandoned): read by every response, in C.
        self.control = OpenLoopControl(_NEVER)
        # Sends one planned instant (compiled): `dispatch` per instant, `dispatched` in all.
        self.dispatcher = OpenLoopDispatcher(self, self.sequence, self.pools, self.recorder)
        self.schedule_done = False
        self.sending_finished = asyncio.Event()  # the schedule is dispatched (or the run stopped)
        self.timer = DueTimer(self.loop, self._on_timer, self.recorder)

    def _attempted(self) -> int:
        return self.dispatcher.dispatched

    async def _generate(self) -> None:
        try:
            for pool in self.pools:
                for _ in range(min(self._prewarm_count(), pool.cap)):
                    self._start_connect(pool)
            if self._refill():
                self.control.next_due_ns = self.batch[0]
                self.timer.arm(self.control.next_due_ns)
                await self.sending_finished.wait()
        finally:
            self.timer.close()
        # Sends planned before the end but still waiting for a connection go out until end+timeout.
        late_deadline_ns = self.end_ns + self.timeout_ns
        while any(pool.pending for pool in self.pools) and monotonic_ns() < late_deadline_ns:
            await asyncio.sleep(DRAIN_POLL_S)
        self.control.accepting_sends = False
        for pool in self.pools:
            if pool.pending:
                self.recorder.record_missed(len(pool.pending))
                pool.pending.clear()
        await self._drain(self._drain_deadline_ns())

    def _prewarm_count(self) -> int:
        load = self.plan.load
        assert isinstance(load, OpenLoop)
        peak_rate = max([load.rate, *(stage.rate for stage in load.stages)]) / self.share.count
        per_origin_rate = peak_rate / len(self.origins)
        return max(PREWARM_CONNECTIONS, math.ceil(per_origin_rate / PREWARM_RATE_PER_CONNECTION))

    def _on_stop(self) -> None:
        self.schedule_done = True
        self.control.next_due_ns = _NEVER
        self.sending_finished.set()

    def _on_timer(self) -> None:
        now_ns = monotonic_ns()
        if now_ns >= self.control.next_due_ns:
            self.send_due(now_ns)
        elif self.control.next_due_ns != _NEVER:
            self.timer.arm(self.control.next_due_ns)

    # -- the schedule -------------------------------------------------------------------------

    def _refill(self) -> bool:
        """Load the next chunk of planned instants; False when the schedule is exhausted."""
        self.batch, self.horizon_s = take_chunk(self.schedule, self.horizon_s, self.start_ns)
        self.batch_i = 0
        return bool(self.batch)

    def send_due(self, now_ns: int) -> None:
        """Dispatch every planned instant up to `now_ns`."""
        if self.stopped_early:
            return
        batch, i = self.batch, self.batch_i
        dispatch = self.dispatcher.dispatch
        while True:
            n = len(batch)
            while i < n and batch[i] <= now_ns:
                dispatch(batch[i])
                i += 1
            if i < n:
                break
            if not self._refill():
                self.schedule_done = True
                batch, i = self.batch, 0
                break
            batch, i = self.batch, 0
        self.batch_i = i
        if i < len(batch):
            self.control.next_due_ns = batch[i]
            self.timer.arm(self.control.next_due_ns)
        else:
            self.control.next_due_ns = _NEVER
            self.sending_finished.set()

    def wait_for_connection(self, pool: Pool, planned_ns: int, payload: bytes) -> None:
        """No connection of `pool` is free for the send planned at `planned_ns`: it waits for one."""
        pending = pool.pending
        pending.append((planned_ns, payload, 0))
        self._open_if_needed(pool)
        if pool.connecting:
            # From now on it waits for a connection's set-up (a target that closes its connections
            # chooses that cost): part of its latency, not of the generator's schedule lag.
            pending[-1] = (planned_ns, payload, monotonic_ns())

    # -- connections --------------------------------------------------------------------------

    def _open_if_needed(self, pool: Pool) -> None:
        while (
            pool.open < pool.cap and pool.connecting < MAX_CONCURRENT_CONNECTS and pool.connecting < len(pool.pending)
        ):
            self._start_connect(pool)

    def _start_connect(self, pool: Pool) -> None:
        pool.open += 1
        pool.connecting += 1
        self.spawn_connect(self._connect(pool))

    async def _connect(self, pool: Pool) -> None:
        conn = OpenLoopConnection(self, self.recorder, pool, tls=self.origins[pool.index].tls)
        try:
            failure = await self._open(conn)
        finally:
            pool.connecting -= 1
        if failure is not None:
            pool.open -= 1
            if pool.pending:  # the oldest waiting send ends in this error
                planned_ns, _, _ = pool.pending.popleft()
                self.recorder.record_error(failure, planned_ns)
            if self.control.accepting_sends:
                self._open_if_needed(pool)
            return
        self.release(pool, conn)

    def release(self, pool: Pool, conn: HttpConnection) -> None:
        """`conn` is free: give it the oldest waiting send, else park it."""
        if pool.pending and self.control.accepting_sends:
            planned_ns, payload, ready_ns = pool.pending.popleft()
            conn.send(payload, planned_ns, ready_ns or monotonic_ns())
            self.recorder.sent += 1
        else:
            pool.idle.append(conn)

    def _after_close(self, conn: HttpConnection) -> None:
        pool = self.pools[conn.origin_index]
        pool.open -= 1
        if pool.pending and self.control.accepting_sends:
            self._open_if_needed(pool)

    def await_server_close(self, conn: HttpConnection) -> None:
        super().await_server_close(conn)
        # The target closes its connections by its own choice: open the replacement now, so that the
        # next planned send finds a connection ready instead of waiting for one (which would count as
        # the generator's lag).
        pool = self.pools[conn.origin_index]
        if self.control.accepting_sends and pool.open < pool.cap and pool.connecting < MAX_CONCURRENT_CONNECTS:
            self._start_connect(pool)
