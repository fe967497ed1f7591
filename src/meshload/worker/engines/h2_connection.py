"""One HTTP/2 client connection: a thin `asyncio.Protocol` over the `h2` library's sans-IO state machine.

`data_received` feeds h2 and acts on its events; everything h2 wants written goes out once per read
or send. Each open stream remembers its request's planned instant, actual send and response status;
a stream that ends is recorded by the owner (`H2Owner.on_stream_end`), which also decides what the
freed stream does next. Flow control: our receive windows are opened wide at the start, and h2
sends the window updates as data is acknowledged.

States: connecting (transport None) -> open (streams come and go) -> retired (GOAWAY received, or
lost: no new stream) -> closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from time import monotonic_ns
from typing import Any, Protocol, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from ..recorder import IntervalRecorder

#: Our receive window (connection and streams): large, so the server never waits for an update.
RECEIVE_WINDOW = 16 * 1024 * 1024
_HTTP2_DEFAULT_WINDOW = 65_535
_CONFIG = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_inbound_headers=False)


class H2Owner(Protocol):
    def on_stream_end(self, conn: H2Connection, stream: Stream, done_ns: int) -> None: ...
    def on_stream_error(self, conn: H2Connection, stream: Stream, kind: str) -> None: ...
    def on_lost(self, conn: H2Connection) -> None: ...


class Stream:
    """One request in flight."""

    __slots__ = ("client", "id", "planned_ns", "sent_ns", "status")

    def __init__(self, stream_id: int, planned_ns: int, sent_ns: int, client: Any) -> None:
        self.id = stream_id
        self.planned_ns = planned_ns
        self.sent_ns = sent_ns
        self.status = 0
        self.client = client  # the closed loop's client that waits for it (None in an open loop)


class H2Connection(asyncio.Protocol):
    def __init__(self, owner: H2Owner, recorder: IntervalRecorder, origin_index: int, max_streams: int) -> None:
        self.owner = owner
        self.recorder = recorder
        self.origin_index = origin_index
        self.max_streams = max_streams  # ours; the server's SETTINGS may lower `capacity`
        self.capacity = max_streams
        self.streams: dict[int, Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.retired = False
        self.h2 = h2.connection.H2Connection(config=_CONFIG)

    @property
    def free(self) -> int:
        """Streams this connection may still open now."""
        return 0 if self.retired else self.capacity - len(self.streams)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = self.h2
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 0,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(RECEIVE_WINDOW - _HTTP2_DEFAULT_WINDOW)
        self.transport.write(conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        self.recorder.bytes_received += len(data)
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.fail_all("malformed")
            return
        for event in events:
            self._on_event(event)
        if self.transport is not None:
            out = self.h2.data_to_send()
            if out:
                self.transport.write(out)

    def connection_lost(self, exc: Exception | None) -> None:
        self.retired = True
        if self.streams:
            self.fail_streams("reset")
        self.owner.on_lost(self)

    # -- events -------------------------------------------------------------------------------

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.status = _status_of(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                self.owner.on_stream_end(self, stream, monotonic_ns())
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                self.owner.on_stream_error(self, stream, "reset")
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.capacity = min(self.max_streams, self.h2.remote_settings.max_concurrent_streams)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.retired = True
            last = event.last_stream_id if event.last_stream_id is not None else 0
            for stream_id in [i for i in self.streams if i > last]:  # never processed: failed
                self.owner.on_stream_error(self, self.streams.pop(stream_id), "reset")
            if not self.streams and self.transport is not None:
                self.transport.close()

    # -- owner's side -------------------------------------------------------------------------

    def send(self, headers: list[tuple[bytes, bytes]], body: bytes, planned_ns: int, sent_ns: int, client: Any) -> None:
        """Open a stream for one request (the caller checked `free`)."""
        conn = self.h2
        stream_id = conn.get_next_available_stream_id()
        self.streams[stream_id] = Stream(stream_id, planned_ns, sent_ns, client)
        conn.send_headers(stream_id, headers, end_stream=not body)
        if body:
            conn.send_data(stream_id, body, end_stream=True)
        assert self.transport is not None
        self.transport.write(conn.data_to_send())

    def cancel(self, stream: Stream) -> None:
        """Give up on a stream (its timeout passed): RST_STREAM, and forget it."""
        self.streams.pop(stream.id, None)
        try:
            self.h2.reset_stream(stream.id, h2.errors.ErrorCodes.CANCEL)
        except h2.exceptions.H2Error:
            return  # already closed on the server's side
        if self.transport is not None:
            self.transport.write(self.h2.data_to_send())

    def fail_streams(self, kind: str) -> None:
        """Every stream in flight ends in error `kind`."""
        streams, self.streams = list(self.streams.values()), {}
        for stream in streams:
            self.owner.on_stream_error(self, stream, kind)

    def fail_all(self, kind: str) -> None:
        """The connection cannot go on: its streams fail with `kind`, and it closes."""
        self.retired = True
        self.fail_streams(kind)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.retired = True
        if self.transport is not None:
            with contextlib.suppress(h2.exceptions.H2Error):
                self.h2.close_connection()
                self.transport.write(self.h2.data_to_send())
            self.transport.close()


def _status_of(headers: list[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == b":status":
            return int(value)
    return 0
