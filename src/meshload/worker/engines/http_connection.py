"""One keep-alive HTTP/1.1 connection: a thin `asyncio.Protocol` over httptools' response parser.

The only parser callback registered is `on_message_complete` (httptools looks callbacks up once, so
absent ones cost nothing: headers and bodies are skipped). A connection carries at most one request
at a time. Each loop model subclasses it with its own `on_message_complete` (the engine's hottest
code, so it acts there rather than through more calls); failures go to the owner (`ConnectionOwner`).

Every response framing of RFC 9112 §6.3 ends a response here: Content-Length and chunked (with chunk
extensions and trailers) in the parser; no body for 1xx, 204 and 304 in the parser too; responses to
HEAD when their head ends (`HeadAwareParser`); and a body without a length when the server closes
(`eof_received`). Interim 1xx responses (RFC 9110 §15.2) complete as messages of their own in the
parser, and the loop models skip them: the final response's status is what counts.

Plain HTTP connections hand received data straight from the event loop to the C parser: the
protocol's `data_received` *is* the parser's `feed_data`, which saves a Python call per read. The
bytes received are then counted by the kernel (`TCP_INFO`'s `tcpi_bytes_received`) and collected at
every interval cut, before every close of ours, and when the server closes (`eof_received`); with a
fold process, the interval cuts' counts are read there (`worker.socket_bytes`) and a connection only
says when it opens and what it received in all when it closes. The kernel counts the server's FIN as
one byte; it is taken off. Bytes that arrive on a connection the
server then resets are missed. A parse error then reaches us as the connection's `connection_lost` exception.
TLS connections (and kernels without that counter) go through `_count_and_feed` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import mmap
import socket
import struct
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from ..hot_path import ConnectionCore
from ..recorder import IntervalRecorder
from ..sock_diag import socket_inode
from ..socket_bytes import LOST, SocketEvents
from .http_request import Origin

#: `struct tcp_info` up to and including `tcpi_bytes_received` (Linux 4.1+), and where that is.
_TCP_INFO_LENGTH = 136
_TCP_INFO_BYTES_RECEIVED = struct.Struct("=Q")
_TCP_INFO_BYTES_RECEIVED_OFFSET = 128
#: `tcpi_state` values after the peer's FIN, which the kernel counts as one byte received:
#: TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, CLOSING.
_FIN_RECEIVED_STATES = frozenset({6, 7, 8, 9, 11})
#: Probing the parser when the server closes (`_ends_at_close`): zero bytes fed in pieces of this size,
#: at most this many times. A framed body still missing more than their product (1 GiB) would be taken
#: for a close-delimited one. The pages are mapped lazily and barely read, so the size costs nothing.
_CLOSE_PROBE_BYTES = 1 << 26
_CLOSE_PROBE_FEEDS = 16


class ConnectionOwner(Protocol):
    origins: list[Origin]

    def on_malformed(self, conn: HttpConnection) -> None: ...
    def on_lost(self, conn: HttpConnection, exc: Exception | None) -> None: ...


class HttpConnection(ConnectionCore, asyncio.Protocol):
    """States: connecting (transport None) -> idle <-> busy -> retired (never reused) -> closed."""

    __slots__ = (
        "_bytes_mark",
        "_events",
        "_inode",
        "_kernel_counts",
        "_sock",
        "data_received",
        "origin_index",
        "owner",
        "transport",
    )
    _recorder: IntervalRecorder  # (ConnectionCore's field, holding the subclass)

    def __init__(
        self, owner: ConnectionOwner, recorder: IntervalRecorder, origin_index: int, *, tls: bool = False
    ) -> None:
        self.owner = owner
        self.origin_index = origin_index
        self.transport: asyncio.Transport | None = None
        self._write: Callable[[bytes], None] = _not_connected  # the transport's `write`, once connected
        self.planned_ns = 0
        self.sent_ns = 0
        self.busy = False
        self.retired = False  # lost, aborted, or the server said it closes: no new request on it
        self._recorder = recorder
        # Where HEAD requests may go, responses are framed by the request too: a parser that knows.
        self._heads = HeadAwareParser(self) if owner.origins[origin_index].head_requests else None
        self._parser: httptools.HttpResponseParser | HeadAwareParser = self._heads or httptools.HttpResponseParser(self)
        self._sock: socket.socket | None = None  # set when the kernel counts our bytes
        self._bytes_mark = 0
        # Chosen before the transport exists: event loops look `data_received` up once.
        self._kernel_counts = not tls and kernel_counts_tcp_bytes()
        # Where the fold process counts the bytes: the socket's inode, reported open until closed.
        self._events: SocketEvents | None = recorder.socket_events if self._kernel_counts else None
        self._inode = 0
        self.data_received = self._parser.feed_data if self._kernel_counts else self._count_and_feed  # type: ignore[method-assign]

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not `asyncio.Transport` subclasses, but behave as one).
        self.transport = cast(asyncio.Transport, transport)
        self._write = self.transport.write
        sock = transport.get_extra_info("socket")
        if sock is None:
            return
        with contextlib.suppress(OSError):  # not TCP (never for our targets): latency is right, just slower
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._kernel_counts:
            self._sock = sock
            events = self._events
            if events is not None:
                with contextlib.suppress(OSError):
                    self._inode = socket_inode(sock)
                    events.opened.append((self._inode, sock.family))

    def _count_and_feed(self, data: bytes) -> None:
        """`data_received` when the kernel does not count the bytes (TLS): count, then parse."""
        self._recorder.bytes_received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.owner.on_malformed(self)

    def eof_received(self) -> None:
        # The server is closing: the socket is still ours to ask, and its FIN is certainly counted.
        self.collect_bytes(fin_received=True)
        if self.busy and self._ends_at_close():
            self.on_message_complete()  # a close-delimited body is complete now (RFC 9112 §6.3)

    def _ends_at_close(self) -> bool:
        """Whether the response in progress is complete now that the server closed.

        It is when its head is complete and its body has no length (neither Content-Length nor
        chunked): the close ends it. httptools has no llhttp_finish to ask, so the parser is probed:
        a framed body takes at most what it still misses and then rejects what follows, an unfinished
        head rejects a zero byte at once, while a close-delimited body takes any bytes."""
        parser = self._parser
        if parser.get_status_code() < 200:
            return False  # no response, or only interim ones, before the close
        self.busy = False  # a framed body that completes during the probe is not a response
        try:
            for _ in range(_CLOSE_PROBE_FEEDS):
                parser.feed_data(_close_probe())
        except httptools.HttpParserError:
            return False
        finally:
            self.busy = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.retired = True
        self._sock = None
        if self._inode:  # gone before its count was read (a reset): the fold process forgets it
            assert self._events is not None
            self._events.closed.append((self._inode, LOST))
            self._inode = 0
        self.owner.on_lost(self, exc)

    def on_message_complete(self) -> None:
        """httptools: one full response has arrived (subclasses say what happens next)."""
        raise NotImplementedError

    # -- owner's side ------------------------------------------------------------------------------

    def collect_bytes(self, *, closing: bool = False, fin_received: bool = False) -> None:
        """Add the bytes the kernel received on this connection since the last call to the recorder.

        Once the loop closes the descriptor its number can be reused by a new connection, so a
        closing transport is not asked again, unless the caller knows the descriptor is still open
        (`closing=True`: the loop is reporting an error on it right now). The FIN is recognised by
        the TCP state, which the kernel may update a moment after the count; counts are deltas, so
        a later call with `fin_received=True` (the last one, from `eof_received`) puts that right."""
        sock = self._sock
        if sock is None or self.transport is None or (self.transport.is_closing() and not closing):
            return
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LENGTH)
        except (OSError, ValueError):
            return  # already closed
        (received,) = _TCP_INFO_BYTES_RECEIVED.unpack_from(info, _TCP_INFO_BYTES_RECEIVED_OFFSET)
        if fin_received or info[0] in _FIN_RECEIVED_STATES:
            received -= 1
        if self._inode:
            # Counted in the fold process, where this final count replaces its last reading.
            assert self._events is not None
            self._events.closed.append((self._inode, received))
            self._inode = 0
            self._sock = None  # reported: not read again
            return
        self._recorder.bytes_received += received - self._bytes_mark
        self._bytes_mark = received

    def close(self) -> None:
        """Close now that no response is awaited (the run is over, or the server never closed)."""
        self.collect_bytes()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close now (after an error the stream is out of step; it cannot be reused)."""
        self.collect_bytes()
        self.busy = False
        self.retired = True
        if self.transport is not None:
            self.transport.abort()


class HeadAwareParser:
    """The response parser of a connection that may carry HEAD requests.

    A response to HEAD ends with its head, whatever Content-Length or Transfer-Encoding it announces
    (RFC 9110 §9.3.2), but llhttp cannot be told which request a response answers: httptools does not
    pass on llhttp's "skip the body" answer to `on_headers_complete`. So the final response to a HEAD
    is completed here when its head is, and the connection goes on with a fresh parser, the old one
    waiting for a body that never comes. Its keep-alive is read from the head itself, since llhttp
    takes a head without a length for a body that lasts until the close.

    It costs a Python call per header line, so only connections to origins with HEAD targets use it.
    """

    __slots__ = ("_answering", "_conn", "_connection_options", "_parser", "_stale", "head")

    def __init__(self, conn: HttpConnection) -> None:
        self._conn = conn
        self.head = False  # the request in flight is a HEAD (set by `HttpConnection.send`)
        self._connection_options = b""  # the response's Connection header values, lower case
        self._answering = False  # `_conn.on_message_complete` is handling a HEAD response
        self._stale = False  # the rest of the current read belongs to a HEAD response already done
        self._parser = httptools.HttpResponseParser(self)

    # -- what the connection and the loop models call ----------------------------------------------

    def feed_data(self, data: bytes | memoryview) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if not self._stale:
                raise
        finally:
            self._stale = False

    def get_status_code(self) -> int:
        return self._parser.get_status_code()

    def should_keep_alive(self) -> bool:
        if not self._answering:
            return self._parser.should_keep_alive()
        options = {option.strip() for option in self._connection_options.split(b",")}
        if self._parser.get_http_version() == "1.0":
            return b"keep-alive" in options
        return b"close" not in options

    # -- httptools callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._connection_options = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"connection":
            self._connection_options += b"," + value.lower()

    def on_headers_complete(self) -> None:
        if self._stale or not self.head or self._parser.get_status_code() < 200:
            return
        self._answering = True
        try:
            self._conn.on_message_complete()
        finally:
            self._answering = False
        self._stale = True
        self._parser = httptools.HttpResponseParser(self)

    def on_message_complete(self) -> None:
        if not self._stale:
            self._conn.on_message_complete()


def _not_connected(payload: bytes) -> None:
    raise RuntimeError("a request was sent on a connection that is not connected yet")


def is_parse_error(exc: BaseException | None) -> bool:
    """A connection lost to a response that is not valid HTTP (or switches protocols unasked)."""
    return isinstance(exc, httptools.HttpParserError | httptools.HttpParserUpgrade)


@functools.cache
def _close_probe() -> memoryview:
    """Zero bytes for `HttpConnection._ends_at_close`, mapped once per process."""
    return memoryview(mmap.mmap(-1, _CLOSE_PROBE_BYTES))


@functools.cache
def kernel_counts_tcp_bytes() -> bool:
    """Whether this kernel reports `tcpi_bytes_received` (probed once on a loopback pair)."""
    if not hasattr(socket, "TCP_INFO"):
        return False
    try:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            with socket.create_connection(listener.getsockname(), timeout=1) as client:
                server, _ = listener.accept()
                with server:
                    server.sendall(b"meshload")
                    client.recv(16)
                    info = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LENGTH)
    except OSError:
        return False
    if len(info) < _TCP_INFO_LENGTH:
        return False
    return _TCP_INFO_BYTES_RECEIVED.unpack_from(info, _TCP_INFO_BYTES_RECEIVED_OFFSET)[0] == len(b"meshload")
