"""HTTP/1.1 closed loop: N clients, each with its own connection per origin, each sending its next
request when the previous one has answered (plus think time). With one target and no think time the
response callback sends the next request itself, on the same connection."""

from __future__ import annotations

import asyncio
from time import monotonic_ns

from ...scenarios.plan import ClosedLoop
from ..hot_path import ClosedLoopControl, ConnectionCore
from ..recorder import IntervalRecorder
from .base import EngineJob
from .http1_runner import Http1Runner
from .http_connection import HttpConnection
from .pacing import wait_for_due


class Client:
    """One client: one connection per origin it talks to."""

    __slots__ = ("conns",)

    def __init__(self, origins: int) -> None:
        self.conns: list[ClosedLoopConnection | None] = [None] * origins


class ClosedLoopConnection(HttpConnection):
    """A response makes its client ready again."""

    __slots__ = ("client",)

    #: The hottest path of the engine, compiled (`worker.hot_path`): records the response and, with one
    #: target and no think time, sends the client's next request on this connection itself.
    on_message_complete = ConnectionCore.closed_loop_message_complete

    def __init__(
        self, runner: ClosedLoopRunner, recorder: IntervalRecorder, client: Client, origin_index: int, *, tls: bool
    ) -> None:
        super().__init__(runner, recorder, origin_index, tls=tls)
        self.runner = runner
        self.client = client
        self.closed_loop = runner.control


class ClosedLoopRunner(Http1Runner):
    def __init__(self, job: EngineJob, stop: asyncio.Event | None) -> None:
        super().__init__(job, stop)
        load = self.plan.load
        assert isinstance(load, ClosedLoop)
        self.think_s = load.think_time_s
        self.think_ns = round(load.think_time_s * 1e9)
        self.clients = [Client(len(self.origins)) for _ in range(self.share.concurrency)]
        self.issuing = True
        self.ended = asyncio.Event()
        # One target and no think time: the response callback sends the next request itself.
        single = len(self.sequence) == 1 and not self.think_ns
        self.control = ClosedLoopControl(self.sequence[0][1] if single else None, self.end_ns)

    async def _generate(self) -> None:
        await wait_for_due(self.start_ns)
        end_timer = self.loop.call_later(max(self.end_ns - monotonic_ns(), 0) / 1e9, self.ended.set)
        for client in self.clients:
            self._issue(client, self.start_ns)
        await self.ended.wait()
        end_timer.cancel()
        self.issuing = False
        self.control.payload = None
        # The loop's timer may fire up to a millisecond early; nothing new starts past end_ns anyway.
        await self._drain(self._drain_deadline_ns())

    def _on_stop(self) -> None:
        self.issuing = False
        self.control.payload = None
        self.ended.set()

    def _issue(self, client: Client, ready_ns: int) -> None:
        """The client is ready (since `ready_ns`): send its next request."""
        if not self.issuing or ready_ns >= self.end_ns:
            return
        origin_index, payload = self.next_request()
        conn = client.conns[origin_index]
        if conn is not None and not conn.retired:
            conn.send(payload, ready_ns, monotonic_ns())
            self.recorder.sent += 1
        else:
            # Sent, as far as the schedule is concerned, now: the connection's set-up that follows (a
            # target that closes its connections chooses it) is part of the latency, not lag.
            self.spawn_connect(self._connect_and_send(client, origin_index, payload, ready_ns, monotonic_ns()))

    async def _connect_and_send(
        self, client: Client, origin_index: int, payload: bytes, ready_ns: int, issued_ns: int
    ) -> None:
        conn = ClosedLoopConnection(self, self.recorder, client, origin_index, tls=self.origins[origin_index].tls)
        failure = await self._open(conn)
        if failure is not None:
            self.recorder.record_error(failure, ready_ns)
            self._issue(client, monotonic_ns())
            return
        client.conns[origin_index] = conn
        # Started before the end, so it is sent even if the connect finished after it.
        conn.send(payload, ready_ns, issued_ns)
        self.recorder.sent += 1

    def after_response(self, conn: ClosedLoopConnection, done_ns: int, keep_alive: bool) -> None:
        """The slow path after a response: think time, other targets, closing connections."""
        client = conn.client
        if not keep_alive:
            client.conns[conn.origin_index] = None
            self.await_server_close(conn)
        if self.think_ns:
            self.loop.call_later(self.think_s, self._issue, client, done_ns + self.think_ns)
        else:
            self._issue(client, done_ns)

    def _after_failure(self, conn: HttpConnection) -> None:
        super()._after_failure(conn)
        assert isinstance(conn, ClosedLoopConnection)  # every connection of this runner is one
        if conn.client.conns[conn.origin_index] is conn:
            conn.client.conns[conn.origin_index] = None
        self._issue(conn.client, monotonic_ns())

    def _after_close(self, conn: HttpConnection) -> None:
        assert isinstance(conn, ClosedLoopConnection)
        if conn.client.conns[conn.origin_index] is conn:
            conn.client.conns[conn.origin_index] = None
