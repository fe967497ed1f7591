"""The embedded backend: one SQLite file (the default, `~/.local/share/meshload/history.db`).

WAL journaling and a busy timeout let `meshload schedule serve` and the runs it starts write the same
file at once; `BEGIN IMMEDIATE` takes the write lock at the start of each transaction, so two
writers queue instead of failing halfway.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .store import ResultStore, StoreError

#: How long a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 30.0


class SqliteStore(ResultStore):
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT"
    driver_errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(str(path))

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"history store {self.path}: cannot open it ({exc}); give a writable file with --store "
                "(or MESHLOAD_STORE), or --no-history"
            ) from exc
        return connection

    def _sql(self, text: str) -> str:
        return text

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        cursor = self._connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        else:
            cursor.execute("COMMIT")
        finally:
            cursor.close()

    def _lock_schema(self, cursor: Any) -> None:
        """`BEGIN IMMEDIATE` already holds the database's write lock."""
