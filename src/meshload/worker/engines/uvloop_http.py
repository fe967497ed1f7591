"""The uvloop HTTP/1.1 engine: open loop (planned instants) and closed loop (N clients).

Every measurement uses `time.monotonic_ns()`; the loop's own clock ticks in milliseconds. Open loop:
each request is sent at its planned instant on a free keep-alive connection; if none is free it waits
in a queue (that wait is charged to the corrected latency) while, up to `plan.max_connections`,
another connection is opened. Due sends are checked by a pacer and again after every response, so
the schedule lag stays well under a millisecond at high rates. Closed loop: each client owns its
connection and sends its next request when the previous one has answered (plus think time).

Timeouts are checked by one periodic sweep, not one timer per request. No error stops the engine:
each is counted by kind and the run goes on.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections import deque
from collections.abc import Callable
from time import monotonic_ns

from ...results.interval import IntervalRecord
from ...scenarios.plan import ClosedLoop, OpenLoop
from ...scenarios.schedule import ArrivalSchedule, WorkerShare
from ..intervals import interval_cuts_s, is_warmup
from ..recorder import IntervalRecorder
from .base import EngineOutcome, RecordSink, connect_error_kind
from .http_connection import HttpConnection, is_parse_error
from .http_request import Origin, build_templates, client_ssl_context, target_sequence
from .pacing import DueTimer, wait_for_due

#: How far ahead the arrival schedule is materialised (bounded memory at any rate).
PLAN_CHUNK_S = 0.05
#: Period of the timeout sweep: request and connect timeouts fire up to this late.
SWEEP_INTERVAL_S = 0.05
#: Connections opened per origin before the start instant (open loop), so the first sends find one:
#: at least this many, and one more per `PREWARM_RATE_PER_CONNECTION` planned requests per second.
PREWARM_CONNECTIONS = 4
PREWARM_RATE_PER_CONNECTION = 2_000
#: Connects in flight per origin at once (open loop). Opening a connection costs the loop far more
#: than a request; unbounded, a short hiccup would trigger a storm of connects that itself delays
#: responses and triggers more connects.
MAX_CONCURRENT_CONNECTS = 4
#: After a "Connection: close" answer the server closes first (its FIN then ends our byte count
#: exactly, and the TIME_WAIT stays on its side); we close only if it has not within this time.
SERVER_CLOSE_GRACE_S = 1.0
#: Poll period while draining in-flight requests after the last send.
DRAIN_POLL_S = 0.005
_NEVER = 1 << 62


async def run_share(
    share: WorkerShare,
    *,
    start_ns: int,
    sink: RecordSink,
    worker_id: str,
    run_id: str = "",
    interval_s: float = 1.0,
    clock_offset_ms: float = 0.0,
    stop: asyncio.Event | None = None,
) -> EngineOutcome:
    """Run this worker's share from `start_ns` (a `time.monotonic_ns()` instant) to the end.

    `sink` receives one `IntervalRecord` per interval; the last has `final=True`. Must be awaited on
    a running event loop (uvloop for the figures the project quotes; any asyncio loop works)."""
    runner_class = _OpenLoopRunner if share.is_open_loop else _ClosedLoopRunner
    runner = runner_class(
        share,
        start_ns=start_ns,
        sink=sink,
        worker_id=worker_id,
        run_id=run_id,
        interval_s=interval_s,
        clock_offset_ms=clock_offset_ms,
        stop=stop,
    )
    return await runner.run()


class _Runner:
    """What both loop models share: recording, interval cuts, connecting, the timeout sweep."""

    def __init__(
        self,
        share: WorkerShare,
        *,
        start_ns: int,
        sink: RecordSink,
        worker_id: str,
        run_id: str,
        interval_s: float,
        clock_offset_ms: float,
        stop: asyncio.Event | None,
    ) -> None:
        plan = share.plan
        self.share = share
        self.plan = plan
        self.loop = asyncio.get_running_loop()
        self.start_ns = start_ns
        self.end_ns = start_ns + round(plan.total_s * 1e9)
        self.sink = sink
        self.interval_s = interval_s
        self.recorder = IntervalRecorder(worker_id=worker_id, run_id=run_id, clock_offset_ms=clock_offset_ms)
        self.origins, templates = build_templates(plan)
        # (origin index, payload) per send, in sending order; cycled.
        self.sequence = [(templates[i].origin_index, templates[i].payload) for i in target_sequence(plan, share.index)]
        self.sequence_len = len(self.sequence)
        self.sequence_i = 0
        self.ssl_context = client_ssl_context(plan.tls_verify) if any(o.tls for o in self.origins) else None
        self.timeout_ns = round(plan.timeout_s * 1e9)
        self.connect_timeout_s = plan.connect_timeout_s
        self.connections: set[HttpConnection] = set()  # established, not yet lost
        self.connections_opened = 0
        self.connect_tasks: set[asyncio.Task[None]] = set()
        self.stop_event = stop
        self.stopped_early = False
        # Wall-clock anchor of the start instant, for records' timestamps.
        self.start_unix_ms = time.time() * 1000.0 - (monotonic_ns() - start_ns) / 1e6
        self._interval_start_s = 0.0
        self._records = 0

    # -- the run -----------------------------------------------------------------------------------

    async def run(self) -> EngineOutcome:
        # Everything alive now (modules, the plan, pydantic's schemas) stays alive for the run: move it
        # out of the collector's sight, so a full collection does not rescan it during the hot loop.
        gc.freeze()
        previous_handler = self.loop.get_exception_handler()
        self.loop.set_exception_handler(_quiet_parse_errors(previous_handler))
        background = [
            asyncio.ensure_future(self._cut_intervals()),
            asyncio.ensure_future(self._sweep_timeouts()),
        ]
        if self.stop_event is not None:
            background.append(asyncio.ensure_future(self._watch_stop(self.stop_event)))
        try:
            await self._generate()
        finally:
            for task in background:
                task.cancel()
            for task in list(self.connect_tasks):
                task.cancel()
            await asyncio.gather(*background, *self.connect_tasks, return_exceptions=True)
            for conn in list(self.connections):
                conn.close()
            self.loop.set_exception_handler(previous_handler)
        finished_ns = monotonic_ns()
        end_s = (finished_ns - self.start_ns) / 1e9
        self._emit(self._interval_start_s, max(end_s - self._interval_start_s, 0.0), final=True)
        return self._outcome(end_s)

    async def _generate(self) -> None:
        raise NotImplementedError

    def _outcome(self, elapsed_s: float) -> EngineOutcome:
        recorder = self.recorder
        errors = {kind: n for kind, n in recorder.total_errors.items() if n}
        return EngineOutcome(
            planned=self._planned_count(),
            sent=recorder.total_sent,
            completed=recorder.total_completed,
            missed=recorder.total_missed,
            errors=errors,
            records=self._records,
            cpu_seconds=recorder.total_cpu_s,
            elapsed_s=elapsed_s,
            connections_opened=self.connections_opened,
        )

    def _planned_count(self) -> int:
        recorder = self.recorder
        return recorder.total_completed + sum(recorder.total_errors.values())

    # -- intervals ---------------------------------------------------------------------------------

    async def _cut_intervals(self) -> None:
        for cut_s in interval_cuts_s(self.plan.total_s, self.plan.warmup_s, self.interval_s):
            await wait_for_due(self.start_ns + round(cut_s * 1e9))
            self._emit(self._interval_start_s, cut_s - self._interval_start_s, final=False)
            self._interval_start_s = cut_s

    def _emit(self, offset_s: float, duration_s: float, *, final: bool) -> None:
        for conn in self.connections:
            conn.collect_bytes()
        record: IntervalRecord = self.recorder.cut(
            offset_s=offset_s,
            duration_s=duration_s,
            start_unix_ms=round(self.start_unix_ms + offset_s * 1000.0),
            warmup=not final and is_warmup(offset_s + duration_s, self.plan.warmup_s),
            final=final,
        )
        self._records += 1
        self.sink(record)

    # -- timeouts and stop -------------------------------------------------------------------------

    async def _sweep_timeouts(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            limit_ns = monotonic_ns() - self.timeout_ns
            for conn in [c for c in self.connections if c.busy and c.sent_ns < limit_ns]:
                self.recorder.record_error("timeout", conn.planned_ns, conn.sent_ns)
                conn.abort()
                self._after_failure(conn)

    async def _watch_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.stopped_early = True
        self.end_ns = min(self.end_ns, monotonic_ns())
        self._on_stop()

    def _on_stop(self) -> None:
        """Hook: the run was told to stop now."""

    # -- connecting --------------------------------------------------------------------------------

    async def _open(self, conn: HttpConnection) -> str | None:
        """Connect `conn` to its origin; None on success, else the error kind."""
        origin: Origin = self.origins[conn.origin_index]
        self.connections_opened += 1
        try:
            await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: conn,
                    origin.host,
                    origin.port,
                    ssl=self.ssl_context if origin.tls else None,
                    server_hostname=origin.server_hostname,
                ),
                self.connect_timeout_s,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- every failure is a counted kind, never a crash
            return connect_error_kind(exc)
        if conn.closed:  # accepted, then closed before we could use it
            return "reset"
        self.connections.add(conn)
        return None

    def _spawn(self, coroutine) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coroutine)
        self.connect_tasks.add(task)
        task.add_done_callback(self.connect_tasks.discard)

    # -- connection events (HttpConnection's owner) ------------------------------------------------

    def on_malformed(self, conn: HttpConnection) -> None:
        if conn.closed:
            return
        if conn.busy:
            self.recorder.record_error("malformed", conn.planned_ns, conn.sent_ns)
        conn.abort()
        self._after_failure(conn)

    def on_lost(self, conn: HttpConnection, exc: Exception | None) -> None:
        if conn not in self.connections:
            return  # lost while connecting: `_open` reports it
        self.connections.discard(conn)
        if conn.busy:
            conn.busy = False
            kind = "malformed" if is_parse_error(exc) else "reset"
            self.recorder.record_error(kind, conn.planned_ns, conn.sent_ns)
            self._after_failure(conn)
        else:
            self._after_close(conn)

    def await_server_close(self, conn: HttpConnection) -> None:
        """The server said it closes `conn`: never reuse it; close it ourselves if the server does not."""
        conn.closed = True
        self.loop.call_later(SERVER_CLOSE_GRACE_S, conn.close)

    def _after_failure(self, conn: HttpConnection) -> None:
        """A request on `conn` ended in an error and `conn` is closed."""
        self.connections.discard(conn)
        self._after_close(conn)

    def _after_close(self, conn: HttpConnection) -> None:
        """`conn` is gone (idle close or failure already counted)."""

    def _next_request(self) -> tuple[int, bytes]:
        i = self.sequence_i
        self.sequence_i = i + 1 if i + 1 < self.sequence_len else 0
        return self.sequence[i]

    async def _drain(self, deadline_ns: int) -> None:
        """Wait until nothing is in flight or connecting (the sweep bounds this), or the deadline."""
        while monotonic_ns() < deadline_ns:
            if not self.connect_tasks and not any(c.busy for c in self.connections):
                return
            await asyncio.sleep(DRAIN_POLL_S)


class _OpenLoopConnection(HttpConnection):
    """Open loop: a response frees the connection for the oldest waiting send, or parks it."""

    __slots__ = ()

    def on_message_complete(self) -> None:
        # The hottest path of the engine: kept to one Python call (the recorder's).
        done_ns = monotonic_ns()
        if not self.busy:
            return  # an answer nobody asked for (already timed out): ignore
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            return  # an interim response (100, 103, ...): the final one follows
        self._recorder.record_response(self.planned_ns, self.sent_ns, done_ns, status)
        self.busy = False
        runner: _OpenLoopRunner = self.owner  # type: ignore[assignment]
        if parser.should_keep_alive():
            pool = runner.pools[self.origin_index]
            if pool.pending and runner.accepting_sends:
                runner._release(pool, self)
            else:
                pool.idle.append(self)
        else:
            runner.await_server_close(self)  # `on_lost` replaces it if sends are waiting
        if done_ns >= runner.next_due_ns:
            runner._send_due(done_ns)


class _Pool:
    """Open loop: one origin's connections and the sends waiting for one."""

    __slots__ = ("cap", "connecting", "idle", "index", "open", "pending")

    def __init__(self, index: int, cap: int) -> None:
        self.index = index
        self.idle: list[HttpConnection] = []
        self.pending: deque[tuple[int, bytes]] = deque()  # (planned_ns, payload), oldest first
        self.open = 0  # connecting + established
        self.connecting = 0
        self.cap = cap


class _OpenLoopRunner(_Runner):
    def __init__(self, share: WorkerShare, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(share, **kwargs)
        cap = max(1, self.plan.max_connections // len(self.origins))
        self.pools = [_Pool(i, cap) for i in range(len(self.origins))]
        self.schedule: ArrivalSchedule = share.schedule()
        self.horizon_s = 0.0
        self.batch: list[int] = []  # planned instants, absolute monotonic ns
        self.batch_i = 0
        self.next_due_ns = _NEVER
        self.dispatched = 0
        self.schedule_done = False
        self.accepting_sends = True  # false once pending sends are abandoned
        self.sending_finished = asyncio.Event()  # the schedule is dispatched (or the run stopped)

    def _planned_count(self) -> int:
        return self.dispatched

    async def _generate(self) -> None:
        for pool in self.pools:
            for _ in range(min(self._prewarm_count(), pool.cap)):
                self._start_connect(pool)
        self.timer = DueTimer(self.loop, self._on_timer)
        try:
            if self._refill():
                self.next_due_ns = self.batch[0]
                self.timer.arm(self.next_due_ns)
                await self.sending_finished.wait()
        finally:
            self.timer.close()
        # Sends planned before the end but still waiting for a connection go out until end+timeout.
        late_deadline_ns = self.end_ns + self.timeout_ns
        while any(pool.pending for pool in self.pools) and monotonic_ns() < late_deadline_ns:
            await asyncio.sleep(DRAIN_POLL_S)
        self.accepting_sends = False
        for pool in self.pools:
            if pool.pending:
                self.recorder.record_missed(len(pool.pending))
                pool.pending.clear()
        await self._drain(monotonic_ns() + self.timeout_ns + round(2 * SWEEP_INTERVAL_S * 1e9))

    def _prewarm_count(self) -> int:
        load = self.plan.load
        assert isinstance(load, OpenLoop)
        peak_rate = max([load.rate, *(stage.rate for stage in load.stages)]) / self.share.count
        per_origin_rate = peak_rate / len(self.origins)
        return max(PREWARM_CONNECTIONS, math.ceil(per_origin_rate / PREWARM_RATE_PER_CONNECTION))

    def _on_stop(self) -> None:
        self.schedule_done = True
        self.next_due_ns = _NEVER
        self.sending_finished.set()

    def _on_timer(self) -> None:
        now_ns = monotonic_ns()
        if now_ns >= self.next_due_ns:
            self._send_due(now_ns)
        elif self.next_due_ns != _NEVER:
            self.timer.arm(self.next_due_ns)

    # -- the schedule ------------------------------------------------------------------------------

    def _refill(self) -> bool:
        """Load the next chunk of planned instants; False when the schedule is exhausted."""
        schedule = self.schedule
        while not schedule.exhausted:
            self.horizon_s += PLAN_CHUNK_S
            instants = schedule.take_until(self.horizon_s)
            if len(instants):
                self.batch = (instants + self.start_ns).tolist()
                self.batch_i = 0
                return True
        self.batch = []
        self.batch_i = 0
        return False

    def _send_due(self, now_ns: int) -> None:
        """Dispatch every planned instant up to `now_ns`."""
        if self.stopped_early:
            return
        batch, i = self.batch, self.batch_i
        while True:
            n = len(batch)
            while i < n and batch[i] <= now_ns:
                self._dispatch(batch[i])
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
            self.next_due_ns = batch[i]
            self.timer.arm(self.next_due_ns)
        else:
            self.next_due_ns = _NEVER
            self.sending_finished.set()

    def _dispatch(self, planned_ns: int) -> None:
        self.dispatched += 1
        origin_index, payload = self._next_request()
        pool = self.pools[origin_index]
        idle = pool.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.send(payload, planned_ns, monotonic_ns())
                self.recorder.sent += 1
                return
        pool.pending.append((planned_ns, payload))
        self._open_if_needed(pool)

    # -- connections -------------------------------------------------------------------------------

    def _open_if_needed(self, pool: _Pool) -> None:
        while (
            pool.open < pool.cap and pool.connecting < MAX_CONCURRENT_CONNECTS and pool.connecting < len(pool.pending)
        ):
            self._start_connect(pool)

    def _start_connect(self, pool: _Pool) -> None:
        pool.open += 1
        pool.connecting += 1
        self._spawn(self._connect(pool))

    async def _connect(self, pool: _Pool) -> None:
        conn = _OpenLoopConnection(self, self.recorder, pool.index, tls=self.origins[pool.index].tls)
        try:
            failure = await self._open(conn)
        finally:
            pool.connecting -= 1
        if failure is not None:
            pool.open -= 1
            if pool.pending:  # the oldest waiting send ends in this error
                planned_ns, _ = pool.pending.popleft()
                self.recorder.record_error(failure, planned_ns)
            if self.accepting_sends:
                self._open_if_needed(pool)
            return
        self._release(pool, conn)

    def _release(self, pool: _Pool, conn: HttpConnection) -> None:
        """`conn` is free: give it the oldest waiting send, else park it."""
        if pool.pending and self.accepting_sends:
            planned_ns, payload = pool.pending.popleft()
            conn.send(payload, planned_ns, monotonic_ns())
            self.recorder.sent += 1
        else:
            pool.idle.append(conn)

    def _after_close(self, conn: HttpConnection) -> None:
        pool = self.pools[conn.origin_index]
        pool.open -= 1
        if pool.pending and self.accepting_sends:
            self._open_if_needed(pool)

    def await_server_close(self, conn: HttpConnection) -> None:
        super().await_server_close(conn)
        # The target closes its connections by its own choice: open the replacement now, so that the
        # next planned send finds a connection ready instead of waiting for one (which would count as
        # the generator's lag).
        pool = self.pools[conn.origin_index]
        if self.accepting_sends and pool.open < pool.cap and pool.connecting < MAX_CONCURRENT_CONNECTS:
            self._start_connect(pool)


class _ClosedLoopConnection(HttpConnection):
    """Closed loop: a response makes its client ready; with one target and no think time the next
    request leaves on this connection at once."""

    __slots__ = ()

    def on_message_complete(self) -> None:
        # The hottest path of the engine: kept to one Python call (the recorder's).
        done_ns = monotonic_ns()
        if not self.busy:
            return
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            return  # an interim response (100, 103, ...): the final one follows
        recorder = self._recorder
        recorder.record_response(self.planned_ns, self.sent_ns, done_ns, status)
        runner: _ClosedLoopRunner = self.owner  # type: ignore[assignment]
        payload = runner.fast_payload
        if payload is not None and done_ns < runner.end_ns and parser.should_keep_alive():
            self.planned_ns = done_ns
            self.sent_ns = monotonic_ns()
            self.transport.write(payload)  # type: ignore[union-attr]
            recorder.sent += 1
        else:
            self.busy = False
            runner.after_response(self, done_ns, parser.should_keep_alive())


class _Client:
    """Closed loop: one client, one connection per origin it talks to."""

    __slots__ = ("conns",)

    def __init__(self, origins: int) -> None:
        self.conns: list[HttpConnection | None] = [None] * origins


class _ClosedLoopRunner(_Runner):
    def __init__(self, share: WorkerShare, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(share, **kwargs)
        load = self.plan.load
        assert isinstance(load, ClosedLoop)
        self.think_s = load.think_time_s
        self.think_ns = round(load.think_time_s * 1e9)
        self.clients = [_Client(len(self.origins)) for _ in range(share.concurrency)]
        self.issuing = True
        self.ended = asyncio.Event()
        # One target and no think time: the response callback sends the next request itself.
        single = len(self.sequence) == 1 and not self.think_ns
        self.fast_payload: bytes | None = self.sequence[0][1] if single else None

    async def _generate(self) -> None:
        await wait_for_due(self.start_ns)
        end_timer = self.loop.call_later(max(self.end_ns - monotonic_ns(), 0) / 1e9, self.ended.set)
        for client in self.clients:
            self._issue(client, self.start_ns)
        await self.ended.wait()
        end_timer.cancel()
        self.issuing = False
        self.fast_payload = None
        # The loop's timer may fire up to a millisecond early; nothing new starts past end_ns anyway.
        await self._drain(monotonic_ns() + self.timeout_ns + round(2 * SWEEP_INTERVAL_S * 1e9))

    def _on_stop(self) -> None:
        self.fast_payload = None
        self.ended.set()

    def _issue(self, client: _Client, ready_ns: int) -> None:
        """The client is ready (since `ready_ns`): send its next request."""
        if not self.issuing or ready_ns >= self.end_ns:
            return
        origin_index, payload = self._next_request()
        conn = client.conns[origin_index]
        if conn is not None and not conn.closed:
            conn.send(payload, ready_ns, monotonic_ns())
            self.recorder.sent += 1
        else:
            self._spawn(self._connect_and_send(client, origin_index, payload, ready_ns))

    async def _connect_and_send(self, client: _Client, origin_index: int, payload: bytes, ready_ns: int) -> None:
        conn = _ClosedLoopConnection(self, self.recorder, origin_index, tls=self.origins[origin_index].tls)
        conn.client = client
        failure = await self._open(conn)
        if failure is not None:
            self.recorder.record_error(failure, ready_ns)
            self._issue(client, monotonic_ns())
            return
        client.conns[origin_index] = conn
        # Started before the end, so it is sent even if the connect finished after it.
        conn.send(payload, ready_ns, monotonic_ns())
        self.recorder.sent += 1

    def after_response(self, conn: HttpConnection, done_ns: int, keep_alive: bool) -> None:
        """The slow path after a response: think time, other targets, closing connections."""
        client: _Client = conn.client  # type: ignore[assignment]
        if not keep_alive:
            client.conns[conn.origin_index] = None
            self.await_server_close(conn)
        if self.think_ns:
            self.loop.call_later(self.think_s, self._issue, client, done_ns + self.think_ns)
        else:
            self._issue(client, done_ns)

    def _after_failure(self, conn: HttpConnection) -> None:
        super()._after_failure(conn)
        client: _Client = conn.client  # type: ignore[assignment]
        if client.conns[conn.origin_index] is conn:
            client.conns[conn.origin_index] = None
        self._issue(client, monotonic_ns())

    def _after_close(self, conn: HttpConnection) -> None:
        client: _Client = conn.client  # type: ignore[assignment]
        if client.conns[conn.origin_index] is conn:
            client.conns[conn.origin_index] = None


def _quiet_parse_errors(previous: Callable[..., object] | None) -> Callable[..., object]:
    """An event-loop exception handler that drops parse errors of our connections.

    Plain connections feed the parser straight from the loop, so a malformed response raises inside
    the loop's read callback: the loop reports it here, then closes the connection, and the error
    is counted (kind "malformed") in `on_lost`. Everything else goes to the previous handler."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        protocol = context.get("protocol")
        if isinstance(protocol, HttpConnection) and is_parse_error(context.get("exception")):
            protocol.collect_bytes(closing=True)  # the descriptor is still open here
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    return handle
