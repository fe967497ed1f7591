"""Root fixtures: real HTTP test servers on loopback, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.http_servers import (
    ServerHandle,
    refused_port,
    self_signed_certificate,
    start_server,
)

StartServer = Callable[..., ServerHandle]


@pytest.fixture
def http_server() -> Iterator[StartServer]:
    """Start test servers: `http_server("ok")`, `http_server("stall", stall_period_s=1, stall_s=0.2)`,
    "malformed", "reset"; all are stopped when the test ends."""
    started: list[ServerHandle] = []

    def start(kind: str, **options: Any) -> ServerHandle:
        handle = start_server(kind, **options)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def refused_url() -> str:
    """An http:// URL on loopback where nothing listens."""
    return f"http://127.0.0.1:{refused_port()}/"


@pytest.fixture(scope="session")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key) of a self-signed server certificate for 127.0.0.1."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session", autouse=True)
def _private_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs and studies the tests make record into a history store under a private data folder,
    never into the user's `~/.local/share/meshload` (processes the tests start inherit it)."""
    import os

    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data-home"))
    yield
    if previous is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = previous
