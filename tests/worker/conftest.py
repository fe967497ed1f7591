"""Fixtures of the engine tests: gRPC test servers and the test service's compiled descriptors."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from tests.support.grpc_servers import PROTO, start_grpc_server
from tests.support.http_servers import ServerHandle

from meshload.scenarios.grpc_calls import grpc_schema
from meshload.scenarios.plan import GrpcSchema


@pytest.fixture(scope="session")
def loadtest_schema() -> GrpcSchema:
    """`tests/support/protos/loadtest.proto` compiled once, as a plan carries it."""
    return grpc_schema([PROTO])


@pytest.fixture
def grpc_server() -> Iterator[Callable[..., ServerHandle]]:
    """Start gRPC test servers: `grpc_server("ok")`, `grpc_server("status", statuses="OK,NOT_FOUND")`,
    "stall", "slow"; all are stopped when the test ends."""
    started: list[ServerHandle] = []

    def start(kind: str = "ok", **options: object) -> ServerHandle:
        handle = start_grpc_server(kind, **options)  # type: ignore[arg-type]
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
