"""One keep-alive HTTP/1.1 connection: a thin `asyncio.Protocol` over httptools' response parser.

`data_received` feeds the parser; the only callback registered is `on_message_complete` (httptools
looks callbacks up once, so absent ones cost nothing: headers and bodies are skipped). A connection
carries at most one request at a time. Each loop model subclasses it with its own
`on_message_complete` (the engine's hottest code, so it acts there rather than through more calls);
failures go to the owner (`ConnectionOwner`).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol

import httptools

from ..recorder import IntervalRecorder


class ConnectionOwner(Protocol):
    def on_malformed(self, conn: HttpConnection) -> None: ...
    def on_lost(self, conn: HttpConnection, exc: Exception | None) -> None: ...


class HttpConnection(asyncio.Protocol):
    """States: connecting (transport None) -> idle <-> busy -> closed."""

    __slots__ = (
        "owner", "origin_index", "client", "transport", "planned_ns", "sent_ns", "busy", "closed",
        "_parser", "_recorder",
    )

    def __init__(self, owner: ConnectionOwner, recorder: IntervalRecorder, origin_index: int) -> None:
        self.owner = owner
        self.origin_index = origin_index
        self.client: object = None  # closed loop: the client this connection belongs to
        self.transport: asyncio.Transport | None = None
        self.planned_ns = 0
        self.sent_ns = 0
        self.busy = False
        self.closed = False
        self._recorder = recorder
        self._parser = httptools.HttpResponseParser(self)

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # not TCP (never for our targets); latency is still right, just slower

    def data_received(self, data: bytes) -> None:
        self._recorder.bytes_received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.owner.on_malformed(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner.on_lost(self, exc)

    def on_message_complete(self) -> None:
        """httptools: one full response has arrived (subclasses say what happens next)."""
        raise NotImplementedError

    # -- owner's side ------------------------------------------------------------------------------

    def send(self, payload: bytes, planned_ns: int, sent_ns: int) -> None:
        self.planned_ns = planned_ns
        self.sent_ns = sent_ns
        self.busy = True
        self.transport.write(payload)  # type: ignore[union-attr]

    def abort(self) -> None:
        """Close now (after an error the stream is out of step; it cannot be reused)."""
        self.busy = False
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
