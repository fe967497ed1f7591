"""Schedules (a meshload command line fired on a cron expression) and the log of their firings.

Cron expressions are read by croniter: five fields (minute hour day month weekday) as in crontab, or
six with seconds first (`*/5 * * * * *`: every 5 seconds). They are evaluated in the schedule's time
zone (UTC unless given), so a schedule fires at the same wall-clock time across daylight-saving
changes and the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from ..errors import UsageError

DEFAULT_TIMEZONE = "UTC"

#: What became of one due time: `running` while the command runs (a server that died leaves it so,
#: and the next server marks it `abandoned`); `succeeded`/`failed` by exit code; `interrupted` when
#: the server was stopped during the run; `skipped` when another run was still going; `missed` when
#: no server was running (one entry stands for `missed_count` due times).
FiringStatus = Literal["running", "succeeded", "failed", "interrupted", "abandoned", "skipped", "missed"]


@dataclass
class Schedule:
    name: str
    cron: str
    command: list[str]  # meshload's arguments: ["run", "--scenario", "x.yaml", ...]
    timezone: str = DEFAULT_TIMEZONE
    created_unix_ms: int = 0


@dataclass
class Firing:
    """One due time of a schedule and what came of it."""

    schedule: str
    due_unix_ms: int
    status: FiringStatus
    started_unix_ms: int | None = None
    ended_unix_ms: int | None = None
    exit_code: int | None = None
    out_dir: str | None = None
    log_path: str | None = None
    missed_count: int = 0  # a `missed` entry: how many due times it stands for (the first is due_unix_ms)
    last_due_unix_ms: int | None = None  # a `missed` entry: its last due time (else: due_unix_ms)
    detail: str = ""
    id: int | None = None
    command: list[str] = field(default_factory=list)


def check_cron(expression: str, timezone: str = DEFAULT_TIMEZONE) -> None:
    """UsageError (one line saying what to write) unless `expression` and `timezone` are usable."""
    fields = expression.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(expression, second_at_beginning=len(fields) == 6):
        raise UsageError(
            f"--cron {expression!r} is not a cron expression; write five fields (minute hour day month "
            "weekday, e.g. '0 3 * * *') or six with seconds first (e.g. '*/10 * * * * *')"
        )
    _zone(timezone)


def next_due_s(expression: str, after_unix_s: float, timezone: str = DEFAULT_TIMEZONE) -> float:
    """The first due time strictly after `after_unix_s` (seconds since the epoch)."""
    start = datetime.fromtimestamp(after_unix_s, tz=_zone(timezone))
    six_fields = len(expression.split()) == 6
    return float(croniter(expression, start, second_at_beginning=six_fields).get_next(float))


#: Due times counted at most when a server was down long (an every-second schedule, for a week).
MAX_COUNTED_DUE_TIMES = 100_000


@dataclass(frozen=True)
class DueTimes:
    """The due times in a span: the first few, how many in all, and the last."""

    first: list[float]
    count: int
    last: float | None


def due_times_s(
    expression: str, after_unix_s: float, until_unix_s: float, timezone: str = DEFAULT_TIMEZONE, *, listed: int = 3
) -> DueTimes:
    """Due times in (after, until]: the first `listed`, the count (up to `MAX_COUNTED_DUE_TIMES`,
    then the count is that bound and `last` the last one counted) and the last."""
    first: list[float] = []
    count = 0
    last = None
    six_fields = len(expression.split()) == 6
    start = datetime.fromtimestamp(after_unix_s, tz=_zone(timezone))
    iterator = croniter(expression, start, second_at_beginning=six_fields)
    due = float(iterator.get_next(float))
    while due <= until_unix_s and count < MAX_COUNTED_DUE_TIMES:
        if count < listed:
            first.append(due)
        count += 1
        last = due
        due = float(iterator.get_next(float))
    return DueTimes(first, count, last)


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"--tz {timezone!r} is not a time zone; use an IANA name such as UTC or Europe/Paris") from exc
