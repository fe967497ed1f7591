"""What both HTTP/1.1 loop models share: the request bytes and their order, connecting, the timeout
sweep, and what happens when a connection fails (`HttpConnection`'s owner).

Timeouts are checked by one periodic sweep, not one timer per request. No error stops the engine:
each is counted by kind and the run goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from time import monotonic_ns

from ..sock_diag import sock_diag_counts_bytes
from ..socket_bytes import SocketEvents
from .base import EngineJob
from .connect_errors import connect_error_kind
from .http_connection import HttpConnection, is_parse_error, kernel_counts_tcp_bytes
from .http_request import Origin, build_templates, client_ssl_context, target_sequence
from .runner import EngineRunner, Job

#: Period of the timeout sweep: request and connect timeouts fire up to this late.
SWEEP_INTERVAL_S = 0.05
#: After a "Connection: close" answer the server closes first (its FIN then ends our byte count
#: exactly, and the TIME_WAIT stays on its side); we close only if it has not within this time.
SERVER_CLOSE_GRACE_S = 1.0
#: Connections whose received bytes are collected per step of an interval cut.
BYTES_SLICE = 8
#: Poll period while draining in-flight requests after the last send.
DRAIN_POLL_S = 0.005


class Http1Runner(EngineRunner):
    """An HTTP/1.1 run; the loop models (`OpenLoopRunner`, `ClosedLoopRunner`) say when to send."""

    def __init__(self, job: EngineJob, stop: asyncio.Event | None) -> None:
        super().__init__(job, stop)
        plan = self.plan
        self.origins, templates = build_templates(plan)
        # (origin index, payload) per send, in sending order; cycled.
        self.sequence = [
            (templates[i].origin_index, templates[i].payload) for i in target_sequence(plan, job.share.index)
        ]
        self.sequence_len = len(self.sequence)
        self.sequence_i = 0
        self.ssl_context = (
            client_ssl_context(plan.tls_verify, plan.tls_ca_pem) if any(o.tls for o in self.origins) else None
        )
        self.timeout_ns = round(plan.timeout_s * 1e9)
        self.connect_timeout_s = plan.connect_timeout_s
        self.connections: set[HttpConnection] = set()  # established, not yet lost
        if self.fold_channel is not None and kernel_counts_tcp_bytes() and sock_diag_counts_bytes():
            # The bytes of every cut are then read in the fold process, not here (`worker.socket_bytes`).
            self.recorder.socket_events = SocketEvents()
        self.connect_tasks: set[asyncio.Task[None]] = set()

    def _background(self) -> list[Job]:
        return [*super()._background(), self._sweep_timeouts()]

    async def _shutdown(self) -> None:
        for task in list(self.connect_tasks):
            task.cancel()
        await asyncio.gather(*self.connect_tasks, return_exceptions=True)
        for conn in list(self.connections):
            conn.close()

    def _before_cut(self) -> None:
        if self.recorder.socket_events is not None:
            return  # the fold process counts them
        for conn in self.connections:
            conn.collect_bytes()

    def _before_cut_steps(self) -> Iterator[None]:
        # One system call per connection: in slices, so that thousands of connections do not hold
        # a send up. Bytes that arrive meanwhile count in this interval or the next, never twice.
        if self.recorder.socket_events is not None:
            return  # the fold process counts them, after the cut
        connections = list(self.connections)
        for start in range(0, len(connections), BYTES_SLICE):
            for conn in connections[start : start + BYTES_SLICE]:
                conn.collect_bytes()
            yield

    def next_request(self) -> tuple[int, bytes]:
        """The next (origin index, request bytes) in the share's target sequence."""
        i = self.sequence_i
        self.sequence_i = i + 1 if i + 1 < self.sequence_len else 0
        return self.sequence[i]

    # -- timeouts -----------------------------------------------------------------------------

    async def _sweep_timeouts(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            limit_ns = monotonic_ns() - self.timeout_ns
            for conn in [c for c in self.connections if c.busy and c.sent_ns < limit_ns]:
                self.recorder.record_error("timeout", conn.planned_ns, conn.sent_ns)
                conn.abort()
                self._after_failure(conn)

    async def _drain(self, deadline_ns: int) -> None:
        """Wait until nothing is in flight or connecting (the sweep bounds this), or the deadline."""
        while monotonic_ns() < deadline_ns:
            if not self.connect_tasks and not any(c.busy for c in self.connections):
                return
            await asyncio.sleep(DRAIN_POLL_S)

    def _drain_deadline_ns(self) -> int:
        """In-flight requests get their timeout, plus two sweeps for the sweep to count them."""
        return monotonic_ns() + self.timeout_ns + round(2 * SWEEP_INTERVAL_S * 1e9)

    # -- connecting ---------------------------------------------------------------------------

    def spawn_connect(self, job: Job) -> None:
        """Run a connect as a task of the run, tracked so the drain waits for it."""
        task = self.spawn(job)
        self.connect_tasks.add(task)
        task.add_done_callback(self.connect_tasks.discard)

    async def _open(self, conn: HttpConnection) -> str | None:
        """Connect `conn` to its origin; None on success, else the error kind."""
        origin: Origin = self.origins[conn.origin_index]
        self.connections_opened += 1
        began_ns = monotonic_ns()
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
        except OSError as exc:  # refused, unreachable, timed out, TLS: each a counted kind
            return connect_error_kind(exc)
        if conn.retired:  # accepted, then closed before we could use it
            return "reset"
        self.recorder.record_connect(monotonic_ns() - began_ns)
        self.connections.add(conn)
        return None

    # -- connection events (HttpConnection's owner) -------------------------------------------

    def on_malformed(self, conn: HttpConnection) -> None:
        if conn.retired:
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
        conn.retired = True
        self.loop.call_later(SERVER_CLOSE_GRACE_S, conn.close)

    def _after_failure(self, conn: HttpConnection) -> None:
        """A request on `conn` ended in an error and `conn` is closed."""
        self.connections.discard(conn)
        self._after_close(conn)

    def _after_close(self, conn: HttpConnection) -> None:
        """`conn` is gone (idle close or failure already counted)."""
