"""Run one BookInfo service instance: `python -m meshload.testbed.apps SERVICE VERSION --fd N ...`.

The testbed binds the listening socket itself and passes it in (`--fd`), so the port is known and held
before the process starts. A gRPC ratings replica (`ratings-grpc v1 --replica NAME --grpc-port P`)
serves gRPC on P (grpcio binds it itself) and its health and admin routes on the passed socket; it
runs on asyncio's own loop, the one grpcio's asyncio API supports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket

import uvloop

from ..httpclient import Upstream
from ..httpserver import serve
from ..topology import GRPC_SERVICE
from . import APPS


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m meshload.testbed.apps")
    parser.add_argument("service", choices=sorted([*APPS, GRPC_SERVICE]))
    parser.add_argument("version")
    parser.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    parser.add_argument("--upstreams", default="{}", help="JSON: service -> {host, addresses}")
    parser.add_argument("--mode", default="normal")
    parser.add_argument("--fault-scale", type=float, default=1.0)
    parser.add_argument("--grpc-port", type=int, default=0, help="gRPC port (ratings-grpc)")
    parser.add_argument("--replica", default="", help="replica name (ratings-grpc)")
    return parser.parse_args(argv)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _inherited(fd: int) -> socket.socket:
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


async def _main(args: argparse.Namespace) -> None:
    upstreams = {name: Upstream.from_json(up) for name, up in json.loads(args.upstreams).items()}
    app = APPS[args.service](args.version, upstreams, fault_scale=args.fault_scale)
    app.set_mode(args.mode)
    await serve(app.handle, _inherited(args.fd), _stop_event())


async def _grpc_main(args: argparse.Namespace) -> None:
    from .ratings_grpc import RatingsGrpcApp, start_grpc_server, stop_grpc_server

    app = RatingsGrpcApp(args.version, args.replica, fault_scale=args.fault_scale)
    app.set_mode(args.mode)
    stop = _stop_event()
    server = await start_grpc_server(app, args.grpc_port)  # before health answers: ready means both
    try:
        await serve(app.handle, _inherited(args.fd), stop)
    finally:
        await stop_grpc_server(server)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.service == GRPC_SERVICE:
        asyncio.run(_grpc_main(args))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_main(args))


if __name__ == "__main__":
    main()
