"""Keep-alive HTTP/1.1 client for the services' downstream calls, and the table of where they go.

In the mesh an app sends every call to its own sidecar's outbound port with the service named in the
Host header; without a mesh (`none`) it calls the service's instances directly, taking turns as a
Kubernetes Service would. The table is swapped at run time when the profile changes.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools

MAX_IDLE_PER_ADDRESS = 64  # idle connections kept per upstream address; more are closed


class UpstreamError(Exception):
    """The call got no HTTP response (refused, reset, timed out, malformed)."""


@dataclass(frozen=True)
class Upstream:
    """Where calls to one service go: the Host header and the addresses to take turns on."""

    host: str
    addresses: tuple[tuple[str, int], ...]

    @classmethod
    def from_json(cls, data: dict) -> Upstream:
        return cls(host=data["host"], addresses=tuple((str(h), int(p)) for h, p in data["addresses"]))

    def to_json(self) -> dict:
        return {"host": self.host, "addresses": [list(address) for address in self.addresses]}


class _ClientProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future | None = None
        self._body: list[bytes] = []
        self.received_any = False
        self.reusable = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport (uvloop's are not subclasses)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(UpstreamError("connection closed before the response"))

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(UpstreamError(f"malformed response: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self._parser.should_keep_alive()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((self._parser.get_status_code(), b"".join(self._body)))

    def send(self, raw: bytes) -> asyncio.Future:
        self._body = []
        self.received_any = False
        self.reusable = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(raw)
        return self._waiter


class UpstreamClient:
    """Calls services by name through the current upstream table, keeping connections alive."""

    def __init__(self, upstreams: dict[str, Upstream]) -> None:
        self._idle: dict[tuple[str, int], deque[_ClientProtocol]] = {}
        self._turns: dict[str, itertools.cycle] = {}
        self.set_upstreams(upstreams)

    def set_upstreams(self, upstreams: dict[str, Upstream]) -> None:
        """Switch where calls go; idle connections to addresses no longer used are closed."""
        self.upstreams = dict(upstreams)
        self._turns = {name: itertools.cycle(up.addresses) for name, up in self.upstreams.items()}
        wanted = {address for up in self.upstreams.values() for address in up.addresses}
        for address in list(self._idle):
            if address not in wanted:
                for protocol in self._idle.pop(address):
                    if protocol.transport is not None:
                        protocol.transport.close()

    async def get(self, service: str, path: str, headers: dict[str, str], timeout_s: float) -> tuple[int, bytes]:
        """GET `path` on `service`; (status, body), or UpstreamError/TimeoutError within `timeout_s`."""
        upstream = self.upstreams.get(service)
        if upstream is None:
            raise UpstreamError(f"no upstream for {service}")
        address = next(self._turns[service])
        lines = [f"GET {path} HTTP/1.1\r\nhost: {upstream.host}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        lines.append("\r\n")
        raw = "".join(lines).encode("latin-1")
        async with asyncio.timeout(timeout_s):
            return await self._exchange(address, raw)

    async def _exchange(self, address: tuple[str, int], raw: bytes) -> tuple[int, bytes]:
        idle = self._idle.setdefault(address, deque())
        while idle:
            protocol = idle.pop()
            if protocol.transport is None or protocol.transport.is_closing():
                continue
            try:
                return await self._send_on(address, protocol, raw)
            except UpstreamError:
                # A kept-alive connection the peer closed meanwhile (a proxy reloading, an idle
                # timeout): a GET that got no byte back is safe to send again on a new connection.
                if protocol.received_any:
                    raise
        protocol = await self._connect(address)
        return await self._send_on(address, protocol, raw)

    async def _connect(self, address: tuple[str, int]) -> _ClientProtocol:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(_ClientProtocol, address[0], address[1])
        except OSError as exc:
            raise UpstreamError(f"connect to {address[0]}:{address[1]} failed: {exc}") from exc
        return protocol

    async def _send_on(self, address: tuple[str, int], protocol: _ClientProtocol, raw: bytes) -> tuple[int, bytes]:
        try:
            result = await protocol.send(raw)
        except BaseException:
            if protocol.transport is not None:
                protocol.transport.close()
            raise
        idle = self._idle.setdefault(address, deque())
        if protocol.reusable and protocol.transport is not None and len(idle) < MAX_IDLE_PER_ADDRESS:
            idle.append(protocol)
        elif protocol.transport is not None:
            protocol.transport.close()
        return result
