"""The store's tables, one list of statements per schema version.

The same SQL serves SQLite and PostgreSQL: `{id}` is each backend's auto-numbered key column, and
types are ones both understand (DOUBLE PRECISION is SQLite's REAL and PostgreSQL's float8; BIGINT
holds milliseconds since the epoch). A store records its version in `meta`; opening a store applies
the versions it lacks, in one transaction, and refuses a store written by a newer meshload.

Tables:
    meta        key/value; `schema_version`
    records     one row per run, study or study cell: plan, headline figures with their intervals,
                validity, environment, where the files are
    labels      a record's labels, one row each (so `--label k=v` is an indexed lookup)
    schedules   name, cron expression, time zone, the meshload command line (JSON list)
    firings     each due time of a schedule and what came of it
"""

from __future__ import annotations

from .records import FIGURES

SCHEMA_VERSION = 1

_FIGURE_COLUMNS = ",\n    ".join(
    f"{name} DOUBLE PRECISION, {name}_low DOUBLE PRECISION, {name}_high DOUBLE PRECISION" for name in FIGURES
)

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        f"""CREATE TABLE records (
    id {{id}},
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    parent_key TEXT,
    plan_name TEXT NOT NULL,
    plan_digest TEXT NOT NULL,
    plan TEXT NOT NULL,
    started_unix_ms BIGINT NOT NULL,
    ended_unix_ms BIGINT NOT NULL,
    recorded_unix_ms BIGINT NOT NULL,
    duration_s DOUBLE PRECISION NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    rate_rps DOUBLE PRECISION,
    {_FIGURE_COLUMNS},
    valid BOOLEAN NOT NULL,
    degraded BOOLEAN NOT NULL,
    validity TEXT NOT NULL,
    environment TEXT NOT NULL,
    location TEXT NOT NULL
)""",
        "CREATE INDEX records_by_plan ON records (plan_name, started_unix_ms)",
        "CREATE INDEX records_by_parent ON records (parent_key)",
        """CREATE TABLE labels (
    record_id BIGINT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (record_id, key)
)""",
        "CREATE INDEX labels_by_pair ON labels (key, value)",
        """CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    command TEXT NOT NULL,
    created_unix_ms BIGINT NOT NULL
)""",
        """CREATE TABLE firings (
    id {id},
    schedule TEXT NOT NULL,
    due_unix_ms BIGINT NOT NULL,
    last_due_unix_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    started_unix_ms BIGINT,
    ended_unix_ms BIGINT,
    exit_code INTEGER,
    out_dir TEXT,
    log_path TEXT,
    missed_count INTEGER NOT NULL,
    detail TEXT NOT NULL,
    command TEXT NOT NULL
)""",
        "CREATE INDEX firings_by_schedule ON firings (schedule, last_due_unix_ms)",
    ),
}
