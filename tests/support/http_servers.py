"""Real HTTP servers on loopback for tests, each in its own process, with counters tests can read.

Kinds (`python tests/support/http_servers.py KIND`):

- ``ok``: keep-alive HTTP/1.1, answers every request at once with ``200 ok`` (HTTPS with ``--tls-cert``);
- ``stall``: like ``ok``, except that while ``time.time() % period_s < stall_s`` it answers nothing,
  then answers everything it held back the moment the stall ends;
- ``close``: answers ``200 ok`` with ``Connection: close`` and closes the connection;
- ``malformed``: answers every request with bytes that are not HTTP;
- ``reset``: accepts, reads the request, and resets the connection (RST, SO_LINGER 0);
- ``capacity``: answers at most ``--capacity-rps`` requests per second, first come first served: each
  request gets the next free slot (1/K s after the previous one) and waits in line for it, so beyond
  K req/s the line, and the latency, grow without bound (a service whose capacity is known).

Each server also listens on a control port that answers any request with its counters as JSON
(``{"requests": n, "connections": m, "peers": {address: requests}}``), so reading them never touches
the server under test. ``--host`` makes it listen on another address of this machine (one end of a
test's own veth pair); the control port stays on loopback. The
servers understand requests without bodies (what the engine tests send). `start_server` returns a
handle; `stop()` ends the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
CLOSE_RESPONSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
MALFORMED_RESPONSE = b"THIS IS NOT HTTP\r\n\r\n"
READY_TIMEOUT_S = 20.0
_END_OF_HEAD = b"\r\n\r\n"


# -- the servers (run in the child process) ---------------------------------------------------------


class _Counters:
    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0
        self.peers: dict[str, int] = {}  # requests by the client's address


class _ServerProtocol(asyncio.Protocol):
    """Counts complete request heads; what it answers depends on the server kind."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport (uvloop's are not subclasses)
        self.server.counters.connections += 1
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        heads = self.buffer.count(_END_OF_HEAD)
        if not heads:
            return
        self.buffer = self.buffer[self.buffer.rfind(_END_OF_HEAD) + len(_END_OF_HEAD) :]
        self.server.counters.requests += heads
        self.server.counters.peers[self.peer] = self.server.counters.peers.get(self.peer, 0) + heads
        self.server.answer(self, heads)


class _Server:
    def __init__(self, kind: str, stall_period_s: float, stall_s: float, capacity_rps: float = 0.0) -> None:
        self.kind = kind
        self.slot_s = 1.0 / capacity_rps if capacity_rps > 0 else 0.0
        self.next_slot_s = 0.0
        self.stall_period_s = stall_period_s
        self.stall_s = stall_s
        self.counters = _Counters()
        self.held: list[tuple[_ServerProtocol, int]] = []

    def answer(self, protocol: _ServerProtocol, heads: int) -> None:
        transport = protocol.transport
        assert transport is not None
        if self.kind == "malformed":
            transport.write(MALFORMED_RESPONSE)
        elif self.kind == "close":
            transport.write(CLOSE_RESPONSE)
            transport.close()
        elif self.kind == "reset":
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        elif self.kind == "capacity":
            loop = asyncio.get_running_loop()
            for _ in range(heads):
                # Slots are handed out in arrival order, so one connection's answers stay in order.
                self.next_slot_s = max(loop.time(), self.next_slot_s) + self.slot_s
                loop.call_at(self.next_slot_s, _write_if_open, protocol, OK_RESPONSE)
        elif self.kind == "stall" and self._stall_remaining_s() > 0:
            if not self.held:
                asyncio.get_running_loop().call_later(self._stall_remaining_s(), self._release_held)
            self.held.append((protocol, heads))
        else:
            transport.write(OK_RESPONSE * heads)

    def _stall_remaining_s(self) -> float:
        phase_s = time.time() % self.stall_period_s
        return self.stall_s - phase_s if phase_s < self.stall_s else 0.0

    def _release_held(self) -> None:
        if self._stall_remaining_s() > 0:  # the timer fired a hair early
            asyncio.get_running_loop().call_later(self._stall_remaining_s(), self._release_held)
            return
        held, self.held = self.held, []
        for protocol, heads in held:
            if protocol.transport is not None and not protocol.transport.is_closing():
                protocol.transport.write(OK_RESPONSE * heads)


def _write_if_open(protocol: _ServerProtocol, data: bytes) -> None:
    if protocol.transport is not None and not protocol.transport.is_closing():
        protocol.transport.write(data)


class ControlProtocol(asyncio.Protocol):
    """Answers any request with `vars(counters)` as JSON, then closes."""

    def __init__(self, counters: object) -> None:
        self.counters = counters

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport (uvloop's are not subclasses)

    def data_received(self, data: bytes) -> None:
        body = json.dumps(vars(self.counters)).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        self.transport.write(head + body)
        self.transport.close()


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    server = _Server(args.kind, args.stall_period_s, args.stall_s, args.capacity_rps)
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    listener = await loop.create_server(lambda: _ServerProtocol(server), args.host, 0, ssl=tls, backlog=1024)
    control = await loop.create_server(lambda: ControlProtocol(server.counters), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    control_port = control.sockets[0].getsockname()[1]
    print(f"READY {port} {control_port}", flush=True)
    # Ends when the parent goes away (stdin closes) or terminates us.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["ok", "stall", "close", "malformed", "reset", "capacity"])
    parser.add_argument("--capacity-rps", type=float, default=0.0)
    parser.add_argument("--stall-period-s", type=float, default=1.0)
    parser.add_argument("--stall-s", type=float, default=0.0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(_serve(args))
    except ImportError:
        asyncio.run(_serve(args))


# -- the handle (used by tests, in the parent process) ----------------------------------------------


@dataclass
class ServerHandle:
    """A running test server: its URL, its counters, and how to stop it."""

    kind: str
    port: int
    control_port: int
    process: subprocess.Popen
    scheme: str = "http"
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/"

    def counters(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.control_port}/", timeout=5) as reply:
            return json.loads(reply.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def start_server(
    kind: str,
    *,
    stall_period_s: float = 1.0,
    stall_s: float = 0.0,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    host: str = "127.0.0.1",
    capacity_rps: float = 0.0,
) -> ServerHandle:
    """Start a test server process and wait until it listens (on `host`)."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        kind,
        "--stall-period-s",
        str(stall_period_s),
        "--stall-s",
        str(stall_s),
        "--host",
        host,
        "--capacity-rps",
        str(capacity_rps),
    ]
    if tls_cert is not None:
        command += ["--tls-cert", str(tls_cert), "--tls-key", str(tls_key)]
    handle = launch_server(command, kind, "https" if tls_cert else "http")
    handle.host = host
    return handle


def launch_server(command: list[str], kind: str, scheme: str = "http") -> ServerHandle:
    """Start a server process that prints `READY <port> <control port>` and serves until its stdin
    closes; its handle once it listens."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), True)
    deadline_s = time.monotonic() + READY_TIMEOUT_S
    line = ""
    while not line.startswith("READY") and time.monotonic() < deadline_s and process.poll() is None:
        line = process.stdout.readline()
    if not line.startswith("READY"):
        process.kill()
        process.wait()
        raise RuntimeError(f"test server {kind!r} did not start (exit code {process.poll()})")
    _, port, control_port = line.split()
    return ServerHandle(kind, int(port), int(control_port), process, scheme)


def refused_port() -> int:
    """A loopback port where nothing listens (bound, then closed; nobody else binds it in a test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1/localhost, made with openssl."""
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


if __name__ == "__main__":
    main()
