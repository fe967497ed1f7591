"""The results store: one interface, two backends (SQLite embedded by default, PostgreSQL by URL).

    store = open_store(None)                                  # ~/.local/share/meshload/history.db
    store = open_store("/srv/meshload/history.db")            # another SQLite file
    store = open_store("postgresql://user:pw@db/meshload")    # a PostgreSQL database

`ResultStore` holds all the SQL (standard SQL both engines run, `?` placeholders); a backend
supplies the connection, its placeholder style, its auto-numbered key column and how it serialises
the first creation of the schema (see `schema.py`). Every method is one transaction, so a reader
never sees half a record and a crash loses at most the record being written.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import MeshloadError, UsageError
from ..results.headline import Estimate
from .records import FIGURES, HistoryRecord, Kind
from .schedules import Firing, Schedule
from .schema import MIGRATIONS, SCHEMA_VERSION

STORE_ENV = "MESHLOAD_STORE"
STORE_FILE = "history.db"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class StoreError(MeshloadError):
    """The store could not be opened, read or written (what, where, what to do)."""


def data_dir() -> Path:
    """meshload's data folder: `$XDG_DATA_HOME/meshload`, or `~/.local/share/meshload`."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "meshload"


def default_store_path() -> Path:
    """`$XDG_DATA_HOME/meshload/history.db`, or `~/.local/share/meshload/history.db`."""
    return data_dir() / STORE_FILE


def store_location(given: str | None) -> str:
    """The store a command uses: `given` (from --store or MESHLOAD_STORE), else the default file."""
    return given if given else str(default_store_path())


def open_store(location: str | None) -> ResultStore:
    """The store at `location` (a PostgreSQL URL or a SQLite file path; None: the default file),
    its schema created or brought up to date on first use."""
    where = store_location(location)
    if where.startswith(POSTGRES_SCHEMES):
        from .postgres_store import PostgresStore

        return PostgresStore(where)
    from .sqlite_store import SqliteStore

    return SqliteStore(Path(where).expanduser())


_RECORD_COLUMNS: tuple[str, ...] = (
    "key",
    "kind",
    "parent_key",
    "plan_name",
    "plan_digest",
    "plan",
    "started_unix_ms",
    "ended_unix_ms",
    "recorded_unix_ms",
    "duration_s",
    "requests",
    "errors",
    "rate_rps",
    *(f"{name}{suffix}" for name in FIGURES for suffix in ("", "_low", "_high")),
    "valid",
    "degraded",
    "validity",
    "environment",
    "location",
)
_FIRING_COLUMNS: tuple[str, ...] = (
    "schedule",
    "due_unix_ms",
    "last_due_unix_ms",
    "status",
    "started_unix_ms",
    "ended_unix_ms",
    "exit_code",
    "out_dir",
    "log_path",
    "missed_count",
    "detail",
    "command",
)


class ResultStore(ABC):
    """Runs, studies and their cells; schedules and their firings."""

    #: The DDL of an auto-numbered primary key column.
    id_column: str
    #: The driver's errors, turned into a StoreError (one line for the user) at the boundary.
    driver_errors: tuple[type[Exception], ...]

    def __init__(self, display: str) -> None:
        self.display = display  # where the store is, for messages (no password)
        self._connection: Any = self._connect()
        self._migrate()

    # -- what a backend supplies ------------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> Any:
        """A DB-API connection."""

    @abstractmethod
    def _sql(self, text: str) -> str:
        """`text` with its `?` placeholders in the driver's style."""

    @abstractmethod
    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction: committed at the end, rolled back on an exception."""

    @abstractmethod
    def _lock_schema(self, cursor: Any) -> None:
        """Serialise schema creation among processes opening a new store at once."""

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------------------------

    @contextmanager
    def _cursor(self, doing: str) -> Iterator[Any]:
        try:
            with self._transaction() as cursor:
                yield cursor
        except self.driver_errors as exc:
            raise StoreError(f"history store {self.display}: could not {doing} ({exc}); check --store") from exc

    def _execute(self, cursor: Any, text: str, params: Sequence[object] = ()) -> None:
        cursor.execute(self._sql(text), tuple(params))

    def _rows(self, cursor: Any, text: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        cursor.execute(self._sql(text), tuple(params))
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _migrate(self) -> None:
        with self._cursor("create its tables") as cursor:
            self._lock_schema(cursor)
            self._execute(cursor, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            found = self._rows(cursor, "SELECT value FROM meta WHERE key = ?", ("schema_version",))
            version = int(found[0]["value"]) if found else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"history store {self.display} has schema version {version}, newer than this meshload's "
                    f"{SCHEMA_VERSION}; upgrade meshload or use another --store"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    self._execute(cursor, statement.replace("{id}", self.id_column))
            if version == 0:
                self._execute(cursor, "INSERT INTO meta (key, value) VALUES (?, ?)", ("schema_version", "0"))
            self._execute(cursor, "UPDATE meta SET value = ? WHERE key = ?", (str(SCHEMA_VERSION), "schema_version"))

    @property
    def schema_version(self) -> int:
        with self._cursor("read its version") as cursor:
            return int(self._rows(cursor, "SELECT value FROM meta WHERE key = ?", ("schema_version",))[0]["value"])

    # -- runs, studies, cells ----------------------------------------------------------------------

    def record(self, *records: HistoryRecord) -> list[int]:
        """Store records (a study and its cells in one go); a key already stored is replaced, so
        recording a folder twice leaves one record. Returns the row ids."""
        columns = ", ".join(_RECORD_COLUMNS)
        marks = ", ".join("?" for _ in _RECORD_COLUMNS)
        updates = ", ".join(f"{column} = excluded.{column}" for column in _RECORD_COLUMNS if column != "key")
        ids = []
        with self._cursor("record a run") as cursor:
            for record in records:
                rows = self._rows(
                    cursor,
                    f"INSERT INTO records ({columns}) VALUES ({marks}) "
                    f"ON CONFLICT (key) DO UPDATE SET {updates} RETURNING id",
                    _record_values(record),
                )
                record.id = int(rows[0]["id"])
                self._execute(cursor, "DELETE FROM labels WHERE record_id = ?", (record.id,))
                for key, value in sorted(record.labels.items()):
                    self._execute(
                        cursor, "INSERT INTO labels (record_id, key, value) VALUES (?, ?, ?)", (record.id, key, value)
                    )
                ids.append(record.id)
        return ids

    def records(
        self,
        *,
        plan: str | None = None,
        labels: Mapping[str, str] | None = None,
        kinds: Sequence[Kind] | None = None,
        parent_key: str | None = None,
        limit: int | None = None,
        oldest_first: bool = False,
    ) -> list[HistoryRecord]:
        """Records matching every filter given, newest first (or oldest first), at most `limit`."""
        where: list[str] = []
        params: list[object] = []
        if plan is not None:
            where.append("plan_name = ?")
            params.append(plan)
        if kinds:
            where.append(f"kind IN ({', '.join('?' for _ in kinds)})")
            params.extend(kinds)
        if parent_key is not None:
            where.append("parent_key = ?")
            params.append(parent_key)
        for key, value in sorted((labels or {}).items()):
            where.append("id IN (SELECT record_id FROM labels WHERE key = ? AND value = ?)")
            params.extend((key, value))
        order = "ASC" if oldest_first else "DESC"
        text = "SELECT * FROM records" + (" WHERE " + " AND ".join(where) if where else "")
        text += f" ORDER BY started_unix_ms {order}, id {order}"
        if limit is not None:
            text += " LIMIT ?"
            params.append(int(limit))
        with self._cursor("read its records") as cursor:
            rows = self._rows(cursor, text, params)
            found = [_record_of(row) for row in rows]
            if found:
                ids = [record.id for record in found]
                marks = ", ".join("?" for _ in ids)
                by_id = {record.id: record for record in found}
                for label in self._rows(
                    cursor, f"SELECT record_id, key, value FROM labels WHERE record_id IN ({marks})", ids
                ):
                    by_id[label["record_id"]].labels[label["key"]] = label["value"]
        return found

    def plan_names(self) -> list[str]:
        with self._cursor("read its plans") as cursor:
            rows = self._rows(cursor, "SELECT DISTINCT plan_name FROM records ORDER BY plan_name")
        return [row["plan_name"] for row in rows]

    # -- schedules -----------------------------------------------------------------------------------

    def add_schedule(self, schedule: Schedule) -> None:
        with self._cursor("add a schedule") as cursor:
            if self._rows(cursor, "SELECT name FROM schedules WHERE name = ?", (schedule.name,)):
                raise UsageError(
                    f"a schedule named {schedule.name!r} exists in {self.display}; remove it first or pick another name"
                )
            self._execute(
                cursor,
                "INSERT INTO schedules (name, cron, timezone, command, created_unix_ms) VALUES (?, ?, ?, ?, ?)",
                (
                    schedule.name,
                    schedule.cron,
                    schedule.timezone,
                    json.dumps(schedule.command),
                    schedule.created_unix_ms,
                ),
            )

    def remove_schedule(self, name: str) -> bool:
        """Remove a schedule (its firings stay in the log); False when there was none."""
        with self._cursor("remove a schedule") as cursor:
            found = self._rows(cursor, "SELECT name FROM schedules WHERE name = ?", (name,))
            self._execute(cursor, "DELETE FROM schedules WHERE name = ?", (name,))
        return bool(found)

    def schedules(self) -> list[Schedule]:
        with self._cursor("read its schedules") as cursor:
            rows = self._rows(cursor, "SELECT * FROM schedules ORDER BY name")
        return [
            Schedule(
                name=row["name"],
                cron=row["cron"],
                command=list(json.loads(row["command"])),
                timezone=row["timezone"],
                created_unix_ms=int(row["created_unix_ms"]),
            )
            for row in rows
        ]

    # -- firings -------------------------------------------------------------------------------------

    def add_firing(self, firing: Firing) -> int:
        marks = ", ".join("?" for _ in _FIRING_COLUMNS)
        with self._cursor("log a firing") as cursor:
            rows = self._rows(
                cursor,
                f"INSERT INTO firings ({', '.join(_FIRING_COLUMNS)}) VALUES ({marks}) RETURNING id",
                _firing_values(firing),
            )
        firing.id = int(rows[0]["id"])
        return firing.id

    def update_firing(self, firing: Firing) -> None:
        if firing.id is None:
            raise ValueError("a firing must be added before it is updated")
        updates = ", ".join(f"{column} = ?" for column in _FIRING_COLUMNS)
        with self._cursor("log a firing") as cursor:
            self._execute(cursor, f"UPDATE firings SET {updates} WHERE id = ?", (*_firing_values(firing), firing.id))

    def firings(self, schedule: str | None = None, *, limit: int | None = None) -> list[Firing]:
        """The log of firings, newest due time first."""
        text = "SELECT * FROM firings"
        params: list[object] = []
        if schedule is not None:
            text += " WHERE schedule = ?"
            params.append(schedule)
        text += " ORDER BY due_unix_ms DESC, id DESC"
        if limit is not None:
            text += " LIMIT ?"
            params.append(int(limit))
        with self._cursor("read its firings") as cursor:
            rows = self._rows(cursor, text, params)
        return [_firing_of(row) for row in rows]

    def last_due_unix_ms(self, schedule: str) -> int | None:
        """The latest due time logged for a schedule (a `missed` entry counts up to its last)."""
        with self._cursor("read its firings") as cursor:
            rows = self._rows(
                cursor, "SELECT MAX(last_due_unix_ms) AS due FROM firings WHERE schedule = ?", (schedule,)
            )
        return int(rows[0]["due"]) if rows and rows[0]["due"] is not None else None

    def abandon_running_firings(self, detail: str) -> int:
        """Mark firings left `running` by a server that died as `abandoned`; returns how many."""
        with self._cursor("log a firing") as cursor:
            found = self._rows(cursor, "SELECT id FROM firings WHERE status = ?", ("running",))
            self._execute(
                cursor, "UPDATE firings SET status = ?, detail = ? WHERE status = ?", ("abandoned", detail, "running")
            )
        return len(found)


def _record_values(record: HistoryRecord) -> list[object]:
    values: dict[str, object] = {
        "key": record.key,
        "kind": record.kind,
        "parent_key": record.parent_key,
        "plan_name": record.plan_name,
        "plan_digest": record.plan_digest,
        "plan": json.dumps(record.plan, sort_keys=True),
        "started_unix_ms": record.started_unix_ms,
        "ended_unix_ms": record.ended_unix_ms,
        "recorded_unix_ms": record.recorded_unix_ms,
        "duration_s": record.duration_s,
        "requests": record.requests,
        "errors": record.errors,
        "rate_rps": record.rate_rps,
        "valid": record.valid,
        "degraded": record.degraded,
        "validity": json.dumps(record.validity),
        "environment": json.dumps(record.environment, sort_keys=True, default=str),
        "location": record.location,
    }
    for name in FIGURES:
        estimate = record.figures.get(name, Estimate(None))
        values[name], values[f"{name}_low"], values[f"{name}_high"] = estimate.value, estimate.low, estimate.high
    return [values[column] for column in _RECORD_COLUMNS]


def _record_of(row: dict[str, Any]) -> HistoryRecord:
    return HistoryRecord(
        id=int(row["id"]),
        key=row["key"],
        kind=row["kind"],
        parent_key=row["parent_key"],
        plan_name=row["plan_name"],
        plan_digest=row["plan_digest"],
        plan=json.loads(row["plan"]),
        started_unix_ms=int(row["started_unix_ms"]),
        ended_unix_ms=int(row["ended_unix_ms"]),
        recorded_unix_ms=int(row["recorded_unix_ms"]),
        duration_s=float(row["duration_s"]),
        requests=int(row["requests"]),
        errors=int(row["errors"]),
        rate_rps=row["rate_rps"],
        figures={name: Estimate(row[name], row[f"{name}_low"], row[f"{name}_high"]) for name in FIGURES},
        valid=bool(row["valid"]),
        degraded=bool(row["degraded"]),
        validity=list(json.loads(row["validity"])),
        environment=dict(json.loads(row["environment"])),
        location=row["location"],
    )


def _firing_values(firing: Firing) -> list[object]:
    return [
        firing.schedule,
        firing.due_unix_ms,
        firing.last_due_unix_ms if firing.last_due_unix_ms is not None else firing.due_unix_ms,
        firing.status,
        firing.started_unix_ms,
        firing.ended_unix_ms,
        firing.exit_code,
        firing.out_dir,
        firing.log_path,
        firing.missed_count,
        firing.detail,
        json.dumps(firing.command),
    ]


def _firing_of(row: dict[str, Any]) -> Firing:
    return Firing(
        id=int(row["id"]),
        schedule=row["schedule"],
        due_unix_ms=int(row["due_unix_ms"]),
        last_due_unix_ms=int(row["last_due_unix_ms"]),
        status=row["status"],
        started_unix_ms=row["started_unix_ms"],
        ended_unix_ms=row["ended_unix_ms"],
        exit_code=row["exit_code"],
        out_dir=row["out_dir"],
        log_path=row["log_path"],
        missed_count=int(row["missed_count"]),
        detail=row["detail"],
        command=list(json.loads(row["command"])),
    )
