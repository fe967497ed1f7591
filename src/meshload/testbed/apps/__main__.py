"""Run one BookInfo service instance: `python -m meshload.testbed.apps SERVICE VERSION --fd N ...`.

The testbed binds the listening socket itself and passes it in (`--fd`), so the port is known and held
before the process starts.
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
from . import APPS


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m meshload.testbed.apps")
    parser.add_argument("service", choices=sorted(APPS))
    parser.add_argument("version")
    parser.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    parser.add_argument("--upstreams", default="{}", help="JSON: service -> {host, addresses}")
    parser.add_argument("--mode", default="normal")
    parser.add_argument("--fault-scale", type=float, default=1.0)
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    upstreams = {name: Upstream.from_json(up) for name, up in json.loads(args.upstreams).items()}
    app = APPS[args.service](args.version, upstreams, fault_scale=args.fault_scale)
    app.set_mode(args.mode)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sock = socket.socket(fileno=args.fd)
    sock.setblocking(False)
    await serve(app.handle, sock, stop)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_main(args))


if __name__ == "__main__":
    main()
