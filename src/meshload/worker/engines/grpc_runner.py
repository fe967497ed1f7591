"""gRPC runs on `grpc.aio`: N channels per origin (one HTTP/2 connection each), calls spread over them
in turn; open loop (a call starts at each planned instant, `PlannedInstants`) or closed loop (N
clients, each starting its next call when the previous one has ended, plus think time).

A call ends one way: a status (OK or any other, recorded as a response under the status's name,
with its latency; the request timeout is the call's deadline, so a late call ends as
DEADLINE_EXCEEDED) or a transport error (`grpc_errors.transport_error_kind`: counted by kind, no
latency). Responses are not deserialized: replies are counted in bytes of their messages.
"""

from __future__ import annotations

import asyncio
from time import monotonic_ns
from typing import Any

import grpc

from ...results.interval import GRPC_STATUS_NAMES
from ...scenarios.grpc_calls import GrpcCall, grpc_calls
from .base import EngineJob
from .connect_errors import connect_error_kind
from .grpc_channels import ChannelSetupError, aio_channel, channel_security
from .grpc_errors import transport_error_kind
from .http_request import target_sequence
from .pacing import wait_for_due
from .planned_instants import PlannedInstants
from .runner import EngineRunner, think_time

#: Beyond the deadline, how long the drain waits for calls to report their end.
DRAIN_GRACE_S = 0.5


class _Origin:
    """The channels to one host:port, and the next one to use."""

    __slots__ = ("channels", "failure", "next")

    def __init__(self) -> None:
        self.channels: list[Any] = []
        self.next = 0
        self.failure: str | None = None  # set when no channel could be made (the error kind)


class GrpcRunner(EngineRunner):
    """What both loop models share: the channels, the calls, and recording each call's end."""

    status_names = GRPC_STATUS_NAMES

    def __init__(self, job: EngineJob, stop: asyncio.Event | None) -> None:
        super().__init__(job, stop)
        plan = self.plan
        self.calls: list[GrpcCall] = grpc_calls(plan)
        self.sequence = target_sequence(plan, job.share.index)
        self.sequence_len = len(self.sequence)
        self.sequence_i = 0
        self.timeout_s = plan.timeout_s
        addresses = list(dict.fromkeys((call.target.address, call.target.tls) for call in self.calls))
        self.origins = [_Origin() for _ in addresses]
        self.origin_of_call = [addresses.index((call.target.address, call.target.tls)) for call in self.calls]
        #: Per origin, per channel, per call of that origin: the multicallable (None: another origin's).
        self.methods: list[list[list[Any]]] = []
        self.in_flight: set[asyncio.Task[None]] = set()

    # -- channels -----------------------------------------------------------------------------

    def _open_channels(self) -> None:
        """N channels per origin, each asked to connect now (before the start instant)."""
        for origin_index, origin in enumerate(self.origins):
            first = self.calls[self.origin_of_call.index(origin_index)]
            try:
                credentials, options = channel_security(first.target, self.plan)
            except ChannelSetupError as exc:
                origin.failure = connect_error_kind(exc.__cause__ or exc)
                self.methods.append([])
                continue
            per_channel = []
            for _ in range(self.plan.max_connections):
                channel = aio_channel(first.target, credentials, options)
                channel.get_state(try_to_connect=True)
                origin.channels.append(channel)
                self.connections_opened += 1
                per_channel.append(
                    [
                        self._multicallable(channel, call) if self.origin_of_call[i] == origin_index else None
                        for i, call in enumerate(self.calls)
                    ]
                )
            self.methods.append(per_channel)

    @staticmethod
    def _multicallable(channel: Any, call: GrpcCall) -> Any:
        # No (de)serializers: requests are bytes already, replies are only counted.
        if call.schema.server_streaming:
            return channel.unary_stream(call.schema.path)
        return channel.unary_unary(call.schema.path)

    async def _shutdown(self) -> None:
        for task in list(self.in_flight):
            task.cancel()
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        for origin in self.origins:
            for channel in origin.channels:
                await channel.close()

    # -- calls ----------------------------------------------------------------------------------

    def _next_call(self) -> tuple[int, Any]:
        """The next (call index, multicallable) in the target sequence, on the origin's next channel."""
        i = self.sequence_i
        self.sequence_i = i + 1 if i + 1 < self.sequence_len else 0
        call_index = self.sequence[i]
        origin_index = self.origin_of_call[call_index]
        origin = self.origins[origin_index]
        if origin.failure is not None:
            return call_index, None
        channel_index = origin.next
        origin.next = channel_index + 1 if channel_index + 1 < len(origin.channels) else 0
        return call_index, self.methods[origin_index][channel_index][call_index]

    async def _call(self, call_index: int, method: Any, planned_ns: int) -> None:
        """Make one call and record how it ended."""
        recorder = self.recorder
        if method is None:  # its origin could not be set up
            failure = self.origins[self.origin_of_call[call_index]].failure
            recorder.record_error(failure or "connect_error", planned_ns)
            await asyncio.sleep(0)  # a closed loop's client must not spin without yielding
            return
        call = self.calls[call_index]
        metadata = call.metadata or None
        sent_ns = monotonic_ns()
        recorder.sent += 1
        received = 0
        try:
            if call.schema.server_streaming:
                async for reply in method(call.request, timeout=self.timeout_s, metadata=metadata):
                    received += len(reply)
            else:
                received = len(await method(call.request, timeout=self.timeout_s, metadata=metadata))
            status = 0
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            kind = transport_error_kind(code, exc.details())
            if kind is not None:
                recorder.record_error(kind, planned_ns, sent_ns)
                return
            status = code.value[0]
        done_ns = monotonic_ns()
        recorder.bytes_received += received
        recorder.record_response(planned_ns, sent_ns, done_ns, status)

    def _start_call(self, planned_ns: int) -> None:
        """Start the next call now, as a task of the run (its end is recorded by the task)."""
        call_index, method = self._next_call()
        task = self.spawn(self._call(call_index, method, planned_ns))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _drain(self) -> None:
        """Calls in flight end by their deadline; wait for them (and a little more) to report it."""
        if self.in_flight:
            await asyncio.wait(list(self.in_flight), timeout=self.timeout_s + DRAIN_GRACE_S)


class GrpcOpenLoopRunner(GrpcRunner):
    """A call starts at every planned instant; gRPC queues it on its channel until it can go."""

    def __init__(self, job: EngineJob, stop: asyncio.Event | None) -> None:
        super().__init__(job, stop)
        self.instants = PlannedInstants(
            self.loop, self.share.schedule(), self.start_ns, self._start_call, self.recorder
        )

    def _attempted(self) -> int:
        return self.instants.dispatched

    def _on_stop(self) -> None:
        self.instants.stop()

    async def _generate(self) -> None:
        self._open_channels()
        await self.instants.run()
        await self._drain()


class GrpcClosedLoopRunner(GrpcRunner):
    """`concurrency` clients, each with one call in flight at a time."""

    def __init__(self, job: EngineJob, stop: asyncio.Event | None) -> None:
        super().__init__(job, stop)
        self.think_s, self.think_ns = think_time(self.plan)
        self.issuing = True

    def _on_stop(self) -> None:
        self.issuing = False

    async def _generate(self) -> None:
        self._open_channels()
        clients = [self.spawn(self._client()) for _ in range(self.share.concurrency)]
        self.in_flight.update(clients)
        await asyncio.wait(clients)

    async def _client(self) -> None:
        await wait_for_due(self.start_ns)
        ready_ns = self.start_ns
        while self.issuing and ready_ns < self.end_ns:
            call_index, method = self._next_call()
            await self._call(call_index, method, ready_ns)
            ready_ns = monotonic_ns()
            if self.think_ns:
                await asyncio.sleep(self.think_s)
                ready_ns += self.think_ns
