"""Real gRPC servers (grpcio's asyncio server) on loopback for tests, each in its own process.

They serve `meshload.test.Echo` from `protos/loadtest.proto` (compiled at start, no generated code):
`Unary` answers one reply, `Stream` answers `count` replies (default 3), `Upload` (client-streaming)
exists so that the engine's refusal of it can be tested. Kinds (`python grpc_servers.py KIND`):

- ``ok``: answers at once;
- ``stall``: while ``time.time() % period_s < stall_s`` holds every call, and answers them all the
  moment the stall ends (the HTTP stall server's behaviour, for the coordinated-omission test);
- ``status``: answers call i with status ``statuses[i % len(statuses)]`` (``--statuses OK,NOT_FOUND``);
- ``slow``: answers each call after ``--delay-s`` (for deadlines).

``--reflection`` turns server reflection on; ``--tls-cert/--tls-key`` serve TLS. A control port
answers any HTTP request with the counters as JSON: ``calls`` (calls that reached a method),
``stream_replies``, ``statuses`` {name: n} and ``peers`` (distinct client address:port, one per
HTTP/2 connection that carried a call).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))
# Run as a script from a checkout without meshload installed: its source tree, last. Never first: the
# installed package (with its compiled module) must stay the one this process and its children import.
if importlib.util.find_spec("meshload") is None:
    sys.path.append(str(_REPO / "src"))

from tests.support.http_servers import ControlProtocol, ServerHandle, launch_server  # noqa: E402

PROTO = _HERE / "protos" / "loadtest.proto"
SERVICE = "meshload.test.Echo"
DEFAULT_STREAM_REPLIES = 3


class _Counters:
    def __init__(self) -> None:
        self.calls = 0
        self.stream_replies = 0
        self.statuses: dict[str, int] = {}
        self.peers: list[str] = []


class _EchoServer:
    def __init__(self, args: argparse.Namespace, request_class: type, reply_class: type) -> None:
        import grpc

        self.grpc = grpc
        self.args = args
        self.request_class = request_class
        self.reply_class = reply_class
        self.counters = _Counters()
        self.peers: set[str] = set()
        self.statuses = itertools.cycle(args.statuses.split(","))

    def _stall_remaining_s(self) -> float:
        phase_s = time.time() % self.args.stall_period_s
        return self.args.stall_s - phase_s if phase_s < self.args.stall_s else 0.0

    async def _arrive(self, context: Any) -> str:
        """Count the call, wait as the kind says; the status to answer with."""
        counters = self.counters
        counters.calls += 1
        peer = context.peer()
        if peer not in self.peers:
            self.peers.add(peer)
            counters.peers.append(peer)
        kind = self.args.kind
        if kind == "stall":
            while (remaining_s := self._stall_remaining_s()) > 0:
                await asyncio.sleep(remaining_s)
        elif kind == "slow":
            await asyncio.sleep(self.args.delay_s)
        status = next(self.statuses) if kind == "status" else "OK"
        counters.statuses[status] = counters.statuses.get(status, 0) + 1
        return status

    async def _finish(self, status: str, context: Any) -> None:
        if status != "OK":
            await context.abort(getattr(self.grpc.StatusCode, status), f"chosen status {status}")

    async def unary(self, request: Any, context: Any) -> Any:
        status = await self._arrive(context)
        await self._finish(status, context)
        return self.reply_class(text=f"reply to {request.id}")

    async def stream(self, request: Any, context: Any) -> AsyncIterator[Any]:
        status = await self._arrive(context)
        await self._finish(status, context)
        for index in range(request.count or DEFAULT_STREAM_REPLIES):
            self.counters.stream_replies += 1
            yield self.reply_class(text=f"reply {index}")

    async def upload(self, requests: Any, context: Any) -> Any:
        await self._arrive(context)
        count = 0
        async for _ in requests:
            count += 1
        return self.reply_class(text=f"{count} received")


async def _serve(args: argparse.Namespace) -> None:
    import grpc
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from grpc_reflection.v1alpha import reflection

    from meshload.scenarios.protos import compile_protos

    file_set = descriptor_pb2.FileDescriptorSet.FromString(compile_protos([PROTO]))
    pool = descriptor_pool.DescriptorPool()
    for file in file_set.file:
        pool.Add(file)
    request_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("meshload.test.EchoRequest"))
    reply_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("meshload.test.EchoReply"))
    echo = _EchoServer(args, request_class, reply_class)
    decode, encode = request_class.FromString, reply_class.SerializeToString
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(echo.unary, decode, encode),
        "Stream": grpc.unary_stream_rpc_method_handler(echo.stream, decode, encode),
        "Upload": grpc.stream_unary_rpc_method_handler(echo.upload, decode, encode),
    }
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    if args.reflection:
        reflection.enable_server_reflection([SERVICE, reflection.SERVICE_NAME], server, pool=pool)
    if args.tls_cert:
        credentials = grpc.ssl_server_credentials([(Path(args.tls_key).read_bytes(), Path(args.tls_cert).read_bytes())])
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    loop = asyncio.get_running_loop()
    control = await loop.create_server(lambda: ControlProtocol(echo.counters), "127.0.0.1", 0)
    print(f"READY {port} {control.sockets[0].getsockname()[1]}", flush=True)
    reader = asyncio.StreamReader()  # ends when the parent goes away (stdin closes) or terminates us
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["ok", "stall", "status", "slow"])
    parser.add_argument("--stall-period-s", type=float, default=1.0)
    parser.add_argument("--stall-s", type=float, default=0.0)
    parser.add_argument("--statuses", default="OK")
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--reflection", action="store_true")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    asyncio.run(_serve(parser.parse_args()))


def start_grpc_server(
    kind: str = "ok",
    *,
    stall_period_s: float = 1.0,
    stall_s: float = 0.0,
    statuses: str = "OK",
    delay_s: float = 0.0,
    reflection: bool = False,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> ServerHandle:
    """Start a gRPC test server process and wait until it listens; `handle.url` is `grpc(s)://host:port/`."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        kind,
        f"--stall-period-s={stall_period_s}",
        f"--stall-s={stall_s}",
        f"--statuses={statuses}",
        f"--delay-s={delay_s}",
    ]
    if reflection:
        command.append("--reflection")
    if tls_cert is not None:
        command += ["--tls-cert", str(tls_cert), "--tls-key", str(tls_key)]
    return launch_server(command, kind, "grpcs" if tls_cert else "grpc")


if __name__ == "__main__":
    main()
