"""History fixtures: the store on both backends (a SQLite file, a real PostgreSQL server started once
per session), and runs made of real HDR histograms of known latency distributions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.postgres_server import PostgresServer

from meshload.history.store import ResultStore, open_store


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, empty store is: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "history.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.database()


@pytest.fixture
def store(store_location: str) -> Iterator[ResultStore]:
    opened = open_store(store_location)
    yield opened
    opened.close()
