"""Fixtures of the coordinator tests: real redis-servers, a real HTTP server that counts, real worker
processes (`meshload worker`), all on loopback and all stopped after the test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from tests.support.http_servers import ServerHandle, start_server
from tests.support.redis_server import RedisServer

from meshload.pipeline import wire

WORKER_START_TIMEOUT_S = 30.0


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def http_server() -> Iterator[ServerHandle]:
    """A keep-alive HTTP server in its own process; `.counters()["requests"]` is what it answered."""
    server = start_server("ok")
    try:
        yield server
    finally:
        server.stop()


class Fleet:
    """Long-lived `meshload worker` processes serving one Redis, as on fleet nodes."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, worker_id: str, *extra: str, environment: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a worker; with `environment` (e.g. MESHLOAD_REDIS) its Redis URL is taken from there."""
        command = [sys.executable, "-m", "meshload", "worker", "--id", worker_id, *extra]
        if environment is None:
            command[4:4] = ["--redis", self.redis_url]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")} | (environment or {})
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.processes[worker_id] = process
        return process

    def wait_registered(self, client, worker_ids: list[str]) -> None:
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while not all(client.exists(wire.worker_alive_key(w)) for w in worker_ids):
            for worker_id in worker_ids:
                process = self.processes[worker_id]
                if process.poll() is not None:
                    stderr = process.stderr.read().decode() if process.stderr is not None else ""
                    raise RuntimeError(f"worker {worker_id} exited: {stderr[-500:]}")
            assert time.monotonic() < deadline, "workers did not register"
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()


@pytest.fixture
def fleet_factory() -> Iterator[Callable[[str], Fleet]]:
    fleets: list[Fleet] = []

    def make(redis_url: str) -> Fleet:
        fleet = Fleet(redis_url)
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.stop()
