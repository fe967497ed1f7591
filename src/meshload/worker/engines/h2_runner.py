"""HTTP/2 runs: N connections per origin (`plan.max_connections`), opened before the start instant,
each carrying up to `plan.max_streams_per_connection` requests at once (fewer if the server's
SETTINGS_MAX_CONCURRENT_STREAMS says so). A request that finds no free stream waits in its origin's
queue, oldest first, and that wait is charged to its corrected latency.

Open loop: a request at every planned instant (`PlannedInstants`). Closed loop: N clients, each
sending its next request when the previous one has ended (plus think time). Over TLS, h2 is
negotiated by ALPN; over plain TCP it is spoken from the first byte (h2c with prior knowledge).
Timeouts are checked by one periodic sweep, as in the HTTP/1.1 engine; errors are counted by kind.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from time import monotonic_ns
from typing import Any
from urllib.parse import urlsplit

from ...scenarios.plan import Plan
from .base import EngineJob
from .connect_errors import connect_error_kind
from .h2_connection import H2Connection, Stream, encode_header_block
from .http_request import USER_AGENT, Origin, client_ssl_context, origin_of, target_sequence
from .pacing import wait_for_due
from .planned_instants import PlannedInstants
from .runner import EngineRunner, Job, think_time

#: Period of the timeout sweep: request timeouts fire up to this late.
SWEEP_INTERVAL_S = 0.05
#: Poll period while draining in-flight requests after the last send.
DRAIN_POLL_S = 0.005
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class H2Request:
    """One target, ready to send: its origin index, encoded header block and body."""

    origin_index: int
    block: bytes
    body: bytes


def h2_requests(plan: Plan) -> tuple[list[Origin], list[H2Request]]:
    """The plan's origins and one request per target (in the plan's order)."""
    origins: list[Origin] = []
    requests = []
    for target in plan.targets:
        origin = origin_of(target.url)
        if origin not in origins:
            origins.append(origin)
        parts = urlsplit(target.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        method = (target.method or plan.method).upper()
        body = target.body if target.body is not None else plan.body
        body_bytes = body.encode("utf-8") if body is not None else b""
        headers = {"user-agent": USER_AGENT}
        for name, value in {**plan.headers, **target.headers}.items():
            headers[name.lower()] = value  # HTTP/2 header names are lowercase
        headers.pop("host", None)  # :authority says it
        if body_bytes or method in _BODY_METHODS:
            headers["content-length"] = str(len(body_bytes))
        block = [
            (b":method", method.encode()),
            (b":scheme", b"https" if origin.tls else b"http"),
            (b":authority", parts.netloc.encode()),
            (b":path", path.encode()),
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()),
        ]
        requests.append(H2Request(origins.index(origin), encode_header_block(block), body_bytes))
    return origins, requests


class _Pool:
    """One origin's connections and the requests waiting for a free stream."""

    __slots__ = ("connecting", "conns", "index", "next", "pending")

    def __init__(self, index: int) -> None:
        self.index = index
        self.conns: list[H2Connection] = []
        self.connecting = 0
        self.next = 0
        self.pending: deque[tuple[int, H2Request, Any]] = deque()  # (planned_ns, request, client)


class H2Runner(EngineRunner):
    """What both loop models share; `_after_end(client, ready_ns)` says what a client does next."""

    def __init__(self, job: EngineJob, stop: asyncio.Event | None) -> None:
        super().__init__(job, stop)
        plan = self.plan
        self.origins, requests = h2_requests(plan)
        self.sequence = [requests[i] for i in target_sequence(plan, job.share.index)]
        self.sequence_len = len(self.sequence)
        self.sequence_i = 0
        self.pools = [_Pool(i) for i in range(len(self.origins))]
        self.ssl_context: ssl.SSLContext | None = None
        if any(origin.tls for origin in self.origins):
            self.ssl_context = client_ssl_context(plan.tls_verify, plan.tls_ca_pem)
            self.ssl_context.set_alpn_protocols(["h2"])
        self.timeout_ns = round(plan.timeout_s * 1e9)
        self.accepting = True  # false once waiting requests are abandoned
        self.connect_tasks: set[asyncio.Task[None]] = set()

    def _background(self) -> list[Job]:
        return [*super()._background(), self._sweep_timeouts()]

    async def _shutdown(self) -> None:
        for task in list(self.connect_tasks):
            task.cancel()
        await asyncio.gather(*self.connect_tasks, return_exceptions=True)
        for pool in self.pools:
            for conn in list(pool.conns):
                conn.close()

    # -- sending ------------------------------------------------------------------------------

    def dispatch(self, planned_ns: int, client: Any = None) -> None:
        """Send the next request of the sequence on a free stream, or queue it."""
        i = self.sequence_i
        self.sequence_i = i + 1 if i + 1 < self.sequence_len else 0
        request = self.sequence[i]
        pool = self.pools[request.origin_index]
        conn = self._free_connection(pool)
        if conn is None:
            pool.pending.append((planned_ns, request, client))
            self._connect_if_needed(pool)
            return
        conn.send(request.block, request.body, planned_ns, monotonic_ns(), client)
        self.recorder.sent += 1

    @staticmethod
    def _free_connection(pool: _Pool) -> H2Connection | None:
        """The next connection (in turn) with a free stream."""
        conns = pool.conns
        count = len(conns)
        for step in range(count):
            conn = conns[(pool.next + step) % count]
            if conn.free > 0:
                pool.next = (pool.next + step + 1) % count
                return conn
        return None

    def _send_waiting(self, pool: _Pool, conn: H2Connection) -> None:
        """`conn` has free streams: give them to the oldest waiting requests."""
        while pool.pending and conn.free > 0 and self.accepting:
            planned_ns, request, client = pool.pending.popleft()
            conn.send(request.block, request.body, planned_ns, monotonic_ns(), client)
            self.recorder.sent += 1

    # -- connection events (H2Connection's owner) ----------------------------------------------

    def on_stream_end(self, conn: H2Connection, stream: Stream, done_ns: int) -> None:
        self.recorder.record_response(stream.planned_ns, stream.sent_ns, done_ns, stream.status)
        if conn.retired:
            if not conn.streams:
                conn.close()  # the server said GOAWAY and every stream it kept has ended
        elif self.pools[conn.origin_index].pending:
            self._send_waiting(self.pools[conn.origin_index], conn)
        self._after_end(stream.client, done_ns)

    def on_stream_error(self, conn: H2Connection, stream: Stream, kind: str) -> None:
        self.recorder.record_error(kind, stream.planned_ns, stream.sent_ns)
        if conn.retired and not conn.streams:
            conn.close()
        self._after_end(stream.client, monotonic_ns())

    def on_lost(self, conn: H2Connection) -> None:
        pool = self.pools[conn.origin_index]
        if conn in pool.conns:
            pool.conns.remove(conn)
            self._connect_if_needed(pool)

    def _after_end(self, client: Any, ready_ns: int) -> None:
        """A request of `client` ended (a response or an error): what it does next."""

    # -- connecting ---------------------------------------------------------------------------

    def _connect_if_needed(self, pool: _Pool) -> None:
        """Keep N connections while requests wait or more can come."""
        wanted = self.plan.max_connections
        while self.accepting and len(pool.conns) + pool.connecting < wanted:
            pool.connecting += 1
            task = self.spawn(self._connect(pool))
            self.connect_tasks.add(task)
            task.add_done_callback(self.connect_tasks.discard)

    async def _connect(self, pool: _Pool) -> None:
        origin = self.origins[pool.index]
        conn = H2Connection(self, self.recorder, pool.index, self.plan.max_streams_per_connection)
        self.connections_opened += 1
        failure = None
        try:
            async with asyncio.timeout(self.plan.connect_timeout_s):
                transport, _ = await self.loop.create_connection(
                    lambda: conn,
                    origin.host,
                    origin.port,
                    ssl=self.ssl_context if origin.tls else None,
                    server_hostname=origin.server_hostname,
                )
                if origin.tls and transport.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
                    failure = "malformed"  # the server does not speak HTTP/2 over TLS (no h2 by ALPN)
                    transport.abort()
                else:
                    failure = await conn.ready  # the server's SETTINGS: how many streams it takes
        except OSError as exc:  # refused, unreachable, timed out, TLS: each a counted kind
            failure = connect_error_kind(exc)
        finally:
            pool.connecting -= 1
        if failure is None and conn.retired:
            failure = "reset"  # accepted, then closed before we could use it
        if failure is not None:
            if pool.pending:  # the oldest waiting request ends in this error
                planned_ns, _, client = pool.pending.popleft()
                self.recorder.record_error(failure, planned_ns)
                self._after_end(client, monotonic_ns())
            if pool.pending:
                self._connect_if_needed(pool)
            return
        pool.conns.append(conn)
        self._send_waiting(pool, conn)

    async def _open_connections(self) -> None:
        """Every origin's N connections, before the start instant if they can be had by then."""
        for pool in self.pools:
            self._connect_if_needed(pool)
        if self.connect_tasks:
            await asyncio.wait(list(self.connect_tasks), timeout=max(self.start_ns - monotonic_ns(), 0) / 1e9)

    # -- timeouts and the end -----------------------------------------------------------------

    async def _sweep_timeouts(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            limit_ns = monotonic_ns() - self.timeout_ns
            for pool in self.pools:
                for conn in list(pool.conns):
                    for stream in [s for s in conn.streams.values() if s.sent_ns < limit_ns]:
                        conn.cancel(stream)
                        self.on_stream_error(conn, stream, "timeout")

    def _in_flight(self) -> bool:
        return any(pool.connecting or any(conn.streams for conn in pool.conns) for pool in self.pools)

    async def _drain(self) -> None:
        """Requests still waiting for a stream may go until end + timeout; then what is in flight
        gets its timeout (the sweep bounds it)."""
        late_deadline_ns = self.end_ns + self.timeout_ns
        while any(pool.pending for pool in self.pools) and monotonic_ns() < late_deadline_ns:
            await asyncio.sleep(DRAIN_POLL_S)
        self.accepting = False
        for pool in self.pools:
            if pool.pending:
                self.recorder.record_missed(len(pool.pending))
                pool.pending.clear()
        deadline_ns = monotonic_ns() + self.timeout_ns + round(2 * SWEEP_INTERVAL_S * 1e9)
        while self._in_flight() and monotonic_ns() < deadline_ns:
            await asyncio.sleep(DRAIN_POLL_S)


class H2OpenLoopRunner(H2Runner):
    def __init__(self, job: EngineJob, stop: asyncio.Event | None) -> None:
        super().__init__(job, stop)
        self.instants = PlannedInstants(self.loop, self.share.schedule(), self.start_ns, self.dispatch, self.recorder)

    def _attempted(self) -> int:
        return self.instants.dispatched

    def _on_stop(self) -> None:
        self.instants.stop()

    def _after_end(self, client: Any, ready_ns: int) -> None:
        # A response is a moment the loop is awake anyway: send what came due meanwhile.
        if ready_ns >= self.instants.next_due_ns:
            self.instants.send_due(ready_ns)

    async def _generate(self) -> None:
        await self._open_connections()
        await self.instants.run()
        await self._drain()


class H2ClosedLoopRunner(H2Runner):
    """`concurrency` clients (numbered), each with one request in flight at a time."""

    def __init__(self, job: EngineJob, stop: asyncio.Event | None) -> None:
        super().__init__(job, stop)
        self.think_s, self.think_ns = think_time(self.plan)
        self.issuing = True
        self.ended = asyncio.Event()

    def _on_stop(self) -> None:
        self.issuing = False
        self.ended.set()

    async def _generate(self) -> None:
        await self._open_connections()
        await wait_for_due(self.start_ns)
        end_timer = self.loop.call_later(max(self.end_ns - monotonic_ns(), 0) / 1e9, self.ended.set)
        for client in range(self.share.concurrency):
            self._issue(client, self.start_ns)
        await self.ended.wait()
        end_timer.cancel()
        self.issuing = False
        await self._drain()

    def _issue(self, client: int, ready_ns: int) -> None:
        if self.issuing and ready_ns < self.end_ns:
            self.dispatch(ready_ns, client)

    def _after_end(self, client: Any, ready_ns: int) -> None:
        if self.think_ns:
            self.loop.call_later(self.think_s, self._issue, client, ready_ns + self.think_ns)
        else:
            self._issue(client, ready_ns)
