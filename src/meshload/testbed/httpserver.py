"""A small HTTP/1.1 server on asyncio + httptools: keep-alive, pipelining in order, no framework.

BookInfo's services run on it so that the application costs little next to the proxies being
measured. A handler gets a `Request` and returns a `Response`, or a coroutine giving one when it has
to wait (downstream calls, injected delays); plain returns skip the task switch.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import cast
from urllib.parse import unquote

import httptools

# Status lines built once (uvicorn does the same), including the codes HTTPStatus lacks.
_STATUS_LINES = {
    code: f"HTTP/1.1 {code} {_reason}\r\n".encode("latin-1")
    for code, _reason in [(status.value, status.phrase) for status in HTTPStatus] + [(555, "Unknown")]
}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Unknown\r\n".encode("latin-1")


class Request:
    """One parsed request. Header names are lower-case; a repeated header keeps the last value."""

    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query")

    def __init__(self, method: str, target: bytes, headers: dict[str, str], body: bytes, keep_alive: bool):
        self.method = method
        raw_path, _, raw_query = target.partition(b"?")
        self.path = unquote(raw_path.decode("latin-1"))
        self.query = raw_query.decode("latin-1")
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class Response:
    """Status, body and a few headers; `encode` gives the bytes on the wire."""

    __slots__ = ("body", "content_type", "extra_headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        extra_headers: list[tuple[str, str]] | None = None,
    ):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.extra_headers = extra_headers

    def encode(self, keep_alive: bool) -> bytes:
        head = [
            _status_line(self.status),
            b"content-type: ",
            self.content_type.encode("latin-1"),
            b"\r\ncontent-length: ",
            str(len(self.body)).encode("ascii"),
            b"\r\n",
        ]
        if self.extra_headers:
            for name, value in self.extra_headers:
                head.append(f"{name}: {value}\r\n".encode("latin-1"))
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        head.append(self.body)
        return b"".join(head)


Handler = Callable[[Request], "Response | Awaitable[Response]"]

_BAD_REQUEST = Response(400, b"bad request\n").encode(keep_alive=False)
_SERVER_ERROR = Response(500, b"internal server error\n")


class _ServerProtocol(asyncio.Protocol):
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        # per-request state, filled by the parser callbacks
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        # requests parsed while an earlier one is still being answered (pipelining)
        self._waiting: deque[Request] = deque()
        self._busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a stream transport (uvloop's are not subclasses)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._waiting.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close_with(_BAD_REQUEST)
        except httptools.HttpParserError:
            self._close_with(_BAD_REQUEST)

    def _close_with(self, raw: bytes) -> None:
        if self._transport is not None:
            self._transport.write(raw)
            self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = Request(
            self._parser.get_method().decode("ascii"),
            self._url,
            self._headers,
            b"".join(self._body),
            self._parser.should_keep_alive(),
        )
        if self._busy:
            self._waiting.append(request)
        else:
            self._dispatch(request)

    def _dispatch(self, request: Request) -> None:
        try:
            outcome = self._handler(request)
        except Exception:  # noqa: BLE001 - a handler's bug answers 500; the connection lives on
            outcome = _SERVER_ERROR
        if isinstance(outcome, Response):
            self._send(request, outcome)
            return
        self._busy = True
        asyncio.get_running_loop().create_task(self._finish(request, outcome))

    async def _finish(self, request: Request, pending: Awaitable[Response]) -> None:
        try:
            response = await pending
        except Exception:  # noqa: BLE001 - as in _dispatch
            response = _SERVER_ERROR
        self._busy = False
        self._send(request, response)
        while self._waiting and not self._busy and self._transport is not None:
            self._dispatch(self._waiting.popleft())

    def _send(self, request: Request, response: Response) -> None:
        if self._transport is None:
            return
        self._transport.write(response.encode(request.keep_alive))
        if not request.keep_alive:
            self._transport.close()
            self._transport = None


async def serve(handler: Handler, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve on an already bound listening socket until `stop` is set."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _ServerProtocol(handler), sock=sock, backlog=1024)
    async with server:
        await stop.wait()
