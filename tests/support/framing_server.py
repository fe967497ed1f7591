"""A raw HTTP/1.x server for framing tests: every response framing RFC 9112 allows, and the interim
responses of RFC 9110, written byte for byte, in pieces, on plain sockets.

The first segment of the request path names the case (`CASES`): `GET /chunked/anything` is answered
the chunked way. `start_framing_server()` starts the server in its own process and returns the
`ServerHandle` of `http_servers.py`; its control port answers, per request path,
`{"requests": {path: n}, "connections": {path: m}, "answered": {path: k}}` (`connections`: connections
whose first request had that path; `answered`: responses written in full).

Each response is a list of pieces written with a short pause between them, so the client's parser
meets a head, a chunk or a trailer split across reads. After the last piece the server either waits
for the next request on the same connection or closes it (FIN, never a reset).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the handle class lives beside this file
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.http_servers import ServerHandle, launch_server

#: Pause between the pieces of one response: long enough that each piece is its own read.
PIECE_GAP_S = 0.002


@dataclass(frozen=True)
class Case:
    """How the server answers every request of one test."""

    pieces: tuple[bytes, ...]
    close: bool  # close the connection (FIN) after the response
    status: int  # the final status the client must count
    description: str


CASES: dict[str, Case] = {
    "content-length": Case(
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-", b"Length: 11\r\n\r\nhello", b" world"),
        close=False,
        status=200,
        description="Content-Length, head and body split across reads",
    ),
    "chunked": Case(
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n",
            b"5;name=value\r\nhel",
            b"lo\r\n6;ext\r\n world\r\n",
            b"0\r\nX-Checksum: 0f\r\n",
            b"\r\n",
        ),
        close=False,
        status=200,
        description="chunked, with chunk extensions and a trailer field",
    ),
    "close-delimited": Case(
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello", b" world, until the server closes"),
        close=True,
        status=200,
        description="no length: the body ends when the server closes (HTTP/1.1)",
    ),
    "http10-close-delimited": Case(
        (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"an HTTP/1.0 body"),
        close=True,
        status=200,
        description="HTTP/1.0 without keep-alive: the body ends when the server closes",
    ),
    "http10-keep-alive": Case(
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",),
        close=False,
        status=200,
        description="HTTP/1.0 with keep-alive and Content-Length",
    ),
    "connection-close": Case(
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",),
        close=True,
        status=200,
        description="Connection: close after every response",
    ),
    "no-content": Case(
        (b"HTTP/1.1 204 No Content\r\nX-Served: yes\r\n\r\n",),
        close=False,
        status=204,
        description="204: never a body",
    ),
    "not-modified": Case(
        # A 304 may carry the Content-Length of the representation it stands for; it has no body.
        (b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\n\r\n',),
        close=False,
        status=304,
        description="304: never a body, whatever Content-Length says",
    ),
    "head": Case(
        # Answers HEAD as GET would be answered, without the body (RFC 9110 §9.3.2).
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5000\r\n\r\n",),
        close=False,
        status=200,
        description="a HEAD response with the Content-Length a GET would get",
    ),
    "head-chunked": Case(
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",),
        close=False,
        status=200,
        description="a HEAD response announcing a chunked body it does not send",
    ),
    "head-no-length": Case(
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",),
        close=False,
        status=200,
        description="a HEAD response with no framing header at all, on a kept-alive connection",
    ),
    "interim": Case(
        (
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\ncreated",
        ),
        close=False,
        status=201,
        description="100, 103 and 102 before the final 201",
    ),
    # Cut short: the server promises a body and closes before it is complete. Errors, not responses.
    "truncated-length": Case(
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100000\r\n\r\nonly this",),
        close=True,
        status=0,
        description="Connection: close, then fewer bytes than Content-Length",
    ),
    "truncated-chunked": Case(
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly",),
        close=True,
        status=0,
        description="Connection: close, then a chunk cut short",
    ),
    "truncated-head": Case(
        (b"HTTP/1.1 200 OK\r\nContent-Ty",),
        close=True,
        status=0,
        description="closed in the middle of the response head",
    ),
}


# -- the server (in its own process) -----------------------------------------------------------------


class _Counters:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.connections: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()


async def _serve_connection(counters: _Counters, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    first = True
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")  # the engine's requests have no body
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            path = head.split(b" ", 2)[1].decode()
            case = CASES.get(path.split("/")[1], CASES["content-length"])
            counters.requests[path] += 1
            if first:
                counters.connections[path] += 1
                first = False
            for index, piece in enumerate(case.pieces):
                if index:
                    await asyncio.sleep(PIECE_GAP_S)
                writer.write(piece)
                await writer.drain()
            counters.answered[path] += 1
            if case.close:
                return
    except ConnectionError:
        return
    finally:
        writer.close()  # a FIN: the close a close-delimited body ends with


async def _serve() -> None:
    counters = _Counters()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps(vars(counters)).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(lambda r, w: _serve_connection(counters, r, w), "127.0.0.1", 0, backlog=1024)
    control_server = await asyncio.start_server(control, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    control_port = control_server.sockets[0].getsockname()[1]
    print(f"READY {port} {control_port}", flush=True)
    # Ends when the parent goes away (stdin closes) or terminates us.
    stdin = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    await stdin.read()


def start_framing_server() -> ServerHandle:
    """Start the server in its own process; its handle once it listens."""
    return launch_server([sys.executable, str(Path(__file__).resolve())], "framing")


def main() -> None:
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
