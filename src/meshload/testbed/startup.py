"""Starting BookInfo's applications: their ports, their command lines, and waiting until BookInfo
answers end to end through the ingress."""

from __future__ import annotations

import socket
import sys
import time

from . import app_admin, processes
from .errors import TestbedFailure
from .inspection import ingress_url, records
from .state import StateFolder, log_tail
from .topology import Instance, InstancePorts, Ports

READY_TIMEOUT_S = 10.0
# paths that prove BookInfo answers end to end: productpage -> details, productpage -> reviews -> ratings
READY_PATHS = ("/api/v1/products/0", "/api/v1/products/0/reviews")


def free_ports(count: int) -> list[int]:
    # Bound all at once so they are distinct, then released for HAProxy to bind.
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def listening_socket() -> socket.socket:
    # Applications get their socket already listening: the port is known and held before they start.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def app_argv(instance: Instance, sock: socket.socket, ports: InstancePorts, options: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "meshload.testbed.apps", instance.service, instance.version]
    argv += ["--fd", str(sock.fileno()), *options]
    if instance.grpc:
        argv += ["--grpc-port", str(ports.grpc), "--replica", instance.name]
    return argv


def wait_ready(folder: StateFolder, state: dict, deadline: float) -> None:
    """Until every application answers its health check, then BookInfo answers `READY_PATHS` through
    the ingress; a process that exits or a `deadline` (monotonic) passed fails with the reason."""
    ports = Ports.from_json(state["ports"])
    pending = {name: p.app for name, p in ports.instances.items()}
    while pending:
        for name, port in list(pending.items()):
            try:
                app_admin.http_call("GET", port, "/health", timeout_s=1.0)
                del pending[name]
            except OSError:
                pass
        if not pending:
            break
        for record in records(state):
            if not processes.is_alive(record):
                raise TestbedFailure(f"{record.name} exited during start: {log_tail(folder.log(record.name))}")
        if time.monotonic() > deadline:
            raise TestbedFailure(
                f"BookInfo did not start in time ({', '.join(sorted(pending))}); see {folder.logs_dir}"
            )
        time.sleep(0.02)
    port = int(ingress_url(state).rsplit(":", 1)[1])
    for path in READY_PATHS:
        last = "no answer"
        while True:
            try:
                status, _ = app_admin.http_call("GET", port, path, timeout_s=5.0)
                if status == 200:
                    break
                last = f"status {status}"
            except OSError as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise TestbedFailure(
                    f"BookInfo is not answering {path} through the ingress ({last}); see {folder.logs_dir}"
                )
            time.sleep(0.05)
