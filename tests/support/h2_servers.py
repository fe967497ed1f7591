"""Real HTTP/2 servers for the HTTP/2 engine's tests: nginx (`http2` on TLS with ALPN, and h2c with
prior knowledge), and a small h2 server of our own that can stall and counts concurrent streams.

nginx counts requests in its access log (one line per request: connection serial, protocol, status),
so `NginxH2.log()` answers how many requests arrived on how many connections over which protocol.

The h2 server (`python h2_servers.py KIND`, kinds ``ok`` and ``stall`` as in `http_servers.py`)
answers ``200 ok`` to every request, announces ``--max-streams`` as SETTINGS_MAX_CONCURRENT_STREAMS,
keeps HTTP/2's default 64 KiB flow-control windows (reopened as it reads), and its control port
reports ``requests``, ``connections``, ``max_streams_seen`` (the most streams one connection had
open at once) and ``body_bytes`` (request bodies received).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.support.http_servers import ControlProtocol, ServerHandle, launch_server  # noqa: E402

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format h2 '$connection $server_protocol $status';
    access_log {dir}/access.log h2;
    keepalive_requests {keepalive_requests};
    http2_max_concurrent_streams {max_streams};
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{h2c_port} http2;
        listen 127.0.0.1:{tls_port} ssl http2;
        listen 127.0.0.1:{http1_port};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ return 200 "ok"; }}
        location /missing {{ return 404; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AccessLog:
    requests: int
    connections: int
    protocols: dict[str, int]
    statuses: dict[str, int]


class NginxH2:
    """nginx serving HTTP/2 on TLS (`https_url`) and h2c (`h2c_url`), and HTTP/1.1 only (`http1_url`)."""

    def __init__(
        self, workdir: Path, cert: Path, key: Path, *, max_streams: int = 128, keepalive_requests: int = 10_000_000
    ) -> None:
        self.workdir = workdir
        self.h2c_port, self.tls_port, self.http1_port = free_port(), free_port(), free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                dir=workdir,
                h2c_port=self.h2c_port,
                tls_port=self.tls_port,
                http1_port=self.http1_port,
                cert=cert,
                key=key,
                max_streams=max_streams,
                keepalive_requests=keepalive_requests,
            )
        )
        self.process = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start")

    @property
    def h2c_url(self) -> str:
        return f"http://127.0.0.1:{self.h2c_port}/"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}/"

    @property
    def http1_url(self) -> str:
        return f"http://127.0.0.1:{self.http1_port}/"

    def log(self) -> AccessLog:
        """What the access log says so far (nginx writes a line as each request ends)."""
        lines = (self.workdir / "access.log").read_text().split("\n")
        entries = [line.split() for line in lines if line.strip()]
        protocols: dict[str, int] = {}
        statuses: dict[str, int] = {}
        for _, protocol, status in entries:
            protocols[protocol] = protocols.get(protocol, 0) + 1
            statuses[status] = statuses.get(status, 0) + 1
        return AccessLog(len(entries), len({entry[0] for entry in entries}), protocols, statuses)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- our own h2 server (runs in the child process) --------------------------------------------------


class _Counters:
    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0
        self.max_streams_seen = 0
        self.body_bytes = 0


class _H2ServerProtocol(asyncio.Protocol):
    def __init__(self, args: argparse.Namespace, counters: _Counters) -> None:
        self.args = args
        self.counters = counters
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.transport: asyncio.Transport | None = None
        self.open_streams: set[int] = set()
        self.held: list[int] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.counters.connections += 1
        self.conn.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.args.max_streams}
        )
        self.conn.initiate_connection()
        self._flush()

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self.open_streams.add(event.stream_id)
                self.counters.max_streams_seen = max(self.counters.max_streams_seen, len(self.open_streams))
            elif isinstance(event, h2.events.StreamEnded):
                self.counters.requests += 1
                remaining_s = self._stall_remaining_s()
                if remaining_s > 0:  # held, and answered with every other held one at the stall's end
                    if not self.held:
                        asyncio.get_running_loop().call_later(remaining_s, self._release_held)
                    self.held.append(event.stream_id)
                else:
                    self._answer(event.stream_id)
            elif isinstance(event, h2.events.DataReceived):
                self.counters.body_bytes += len(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.open_streams.discard(event.stream_id)
        self._flush()

    def _stall_remaining_s(self) -> float:
        if self.args.kind != "stall":
            return 0.0
        phase_s = time.time() % self.args.stall_period_s
        return self.args.stall_s - phase_s if phase_s < self.args.stall_s else 0.0

    def _release_held(self) -> None:
        held, self.held = self.held, []
        for stream_id in held:
            self._answer(stream_id, flush=False)
        self._flush()

    def _answer(self, stream_id: int, *, flush: bool = True) -> None:
        if stream_id not in self.open_streams or self.transport is None or self.transport.is_closing():
            return
        self.open_streams.discard(stream_id)
        self.conn.send_headers(stream_id, [(b":status", b"200"), (b"content-length", b"2")])
        self.conn.send_data(stream_id, b"ok", end_stream=True)
        if flush:
            self._flush()

    def _flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.conn.data_to_send())


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    counters = _Counters()
    listener = await loop.create_server(lambda: _H2ServerProtocol(args, counters), "127.0.0.1", 0)
    control = await loop.create_server(lambda: ControlProtocol(counters), "127.0.0.1", 0)
    print(f"READY {listener.sockets[0].getsockname()[1]} {control.sockets[0].getsockname()[1]}", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()


def start_h2_server(
    kind: str = "ok", *, max_streams: int = 100, stall_period_s: float = 1.0, stall_s: float = 0.0
) -> ServerHandle:
    """Start our h2c server (prior knowledge) and wait until it listens."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        kind,
        f"--max-streams={max_streams}",
        f"--stall-period-s={stall_period_s}",
        f"--stall-s={stall_s}",
    ]
    return launch_server(command, kind, "http")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["ok", "stall"])
    parser.add_argument("--max-streams", type=int, default=100)
    parser.add_argument("--stall-period-s", type=float, default=1.0)
    parser.add_argument("--stall-s", type=float, default=0.0)
    try:
        import uvloop

        uvloop.run(_serve(parser.parse_args()))
    except ImportError:
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
