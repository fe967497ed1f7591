"""`meshload schedule`: meshload command lines fired on cron expressions, kept in the history store.

meshload schedule add nightly --cron '0 3 * * *' -- run --scenario bookinfo-productpage --rate 200
meshload schedule list | remove NAME | log [NAME] | serve
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from . import terminal
from .history_hook import StoreOption
from .parse_errors import CLI_ERROR, parse_error_message

if TYPE_CHECKING:
    from ..history.schedules import Firing

schedule_app = typer.Typer(
    name="schedule", help="Run meshload commands on cron schedules (kept in the history store).", no_args_is_help=True
)

#: Commands a schedule may not fire (a server firing servers).
NOT_SCHEDULABLE = ("schedule",)


@schedule_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The schedule's name.", show_default=False)],
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="After --: the meshload command line to fire, e.g. -- run --scenario x.yaml", show_default=False
        ),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(
            "--cron",
            envvar="MESHLOAD_SCHEDULE_CRON",
            show_envvar=True,
            help="Cron expression: five fields (minute hour day month weekday), or six with seconds first.",
        ),
    ] = None,
    timezone: Annotated[
        str,
        typer.Option(
            "--tz", envvar="MESHLOAD_SCHEDULE_TZ", show_envvar=True, help="Time zone of the expression (IANA name)."
        ),
    ] = "UTC",
    store: StoreOption = None,
) -> None:
    """Add a schedule: `schedule add NAME --cron '0 3 * * *' -- run ARGS...`."""
    from ..history.records import format_time, now_ms
    from ..history.schedules import Schedule, check_cron, next_due_s
    from ..history.store import open_store

    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"schedule name {name!r}: use letters, digits, - or _ (it names a folder)")
    if cron is None:
        raise UsageError("give --cron, e.g. --cron '0 3 * * *' (every day at 03:00)")
    check_cron(cron, timezone)
    command = command or []
    check_command(command)
    schedule = Schedule(name=name, cron=cron, command=command, timezone=timezone, created_unix_ms=now_ms())
    with open_store(store) as opened:
        opened.add_schedule(schedule)
        display = opened.display
    next_ms = next_due_s(cron, time.time(), timezone) * 1000
    terminal.success(f"schedule {name} added to {display}; next due {format_time(next_ms)} (`meshload schedule serve`)")


@schedule_app.command("list")
def list_schedules(
    as_json: Annotated[
        bool, typer.Option("--json", envvar="MESHLOAD_SCHEDULE_JSON", show_envvar=True, help="Print as JSON on stdout.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """The schedules, each with its next due time and its last firing."""
    from rich.table import Table

    from ..history.records import format_time
    from ..history.schedules import next_due_s
    from ..history.store import open_store

    with open_store(store) as opened:
        schedules = opened.schedules()
        last = {schedule.name: opened.firings(schedule.name, limit=1) for schedule in schedules}
        display = opened.display
    now = time.time()
    if as_json:
        document = [
            {
                **asdict(schedule),
                "next_due_unix_ms": round(next_due_s(schedule.cron, now, schedule.timezone) * 1000),
                "last_firing": asdict(last[schedule.name][0]) if last[schedule.name] else None,
            }
            for schedule in schedules
        ]
        terminal.result(json.dumps(document, indent=1))
        return
    if not schedules:
        terminal.info(f"no schedule in {display}; add one with `meshload schedule add NAME --cron EXPR -- run ...`")
        return
    table = Table(title=f"schedules: {display}")
    for heading in ("name", "cron", "tz", "command", "next due", "last firing"):
        table.add_column(heading, overflow="fold")
    for schedule in schedules:
        found = last[schedule.name]
        table.add_row(
            schedule.name,
            schedule.cron,
            schedule.timezone,
            "meshload " + " ".join(schedule.command),
            format_time(next_due_s(schedule.cron, now, schedule.timezone) * 1000),
            _describe(found[0]) if found else "–",
        )
    terminal.table(table)


@schedule_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The schedule to remove.", show_default=False)],
    store: StoreOption = None,
) -> None:
    """Remove a schedule (its firings stay in the log)."""
    from ..history.store import open_store

    with open_store(store) as opened:
        if not opened.remove_schedule(name):
            raise UsageError(f"no schedule named {name!r} in {opened.display}; `meshload schedule list` shows them")
        terminal.success(f"schedule {name} removed from {opened.display}")


@schedule_app.command("log")
def log(
    name: Annotated[str | None, typer.Argument(help="Only this schedule's firings.", show_default=False)] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", envvar="MESHLOAD_SCHEDULE_LIMIT", show_envvar=True, help="At most this many, newest first."
        ),
    ] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", envvar="MESHLOAD_SCHEDULE_JSON", show_envvar=True, help="Print as JSON on stdout.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """The firings: each due time and what came of it (succeeded, failed, skipped, missed, ...)."""
    from rich.table import Table

    from ..history.records import format_time
    from ..history.store import open_store

    with open_store(store) as opened:
        firings = opened.firings(name, limit=limit)
        display = opened.display
    if as_json:
        terminal.result(json.dumps([asdict(firing) for firing in firings], indent=1))
        return
    table = Table(title=f"firings: {display}")
    for heading in ("due", "schedule", "status", "exit", "ran (s)", "output", "detail"):
        table.add_column(heading, overflow="fold")
    for firing in firings:
        ran = (
            f"{(firing.ended_unix_ms - firing.started_unix_ms) / 1000:.1f}"
            if firing.started_unix_ms and firing.ended_unix_ms
            else "–"
        )
        table.add_row(
            format_time(firing.due_unix_ms),
            firing.schedule,
            firing.status,
            str(firing.exit_code) if firing.exit_code is not None else "–",
            ran,
            firing.out_dir or "–",
            firing.detail,
        )
    terminal.table(table)


@schedule_app.command("serve")
def serve(
    runs_dir: Annotated[
        Path | None,
        typer.Option(
            "--runs-dir",
            envvar="MESHLOAD_SCHEDULE_RUNS_DIR",
            show_envvar=True,
            help="Where fired runs and studies without --out write (default: <data dir>/scheduled).",
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Fire the schedules until stopped (SIGTERM or Ctrl-C): one command at a time, a due time that
    finds a command still running is skipped, due times missed while no server ran are logged."""
    from ..coordinator.scheduler import Scheduler
    from ..history.store import data_dir, open_store, store_location

    folder = (runs_dir if runs_dir is not None else data_dir() / "scheduled").resolve()
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        terminal.info(f"{signal.Signals(signum).name}: stopping")
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with open_store(store) as opened:
        terminal.info(f"serving the schedules of {opened.display}; fired runs write under {folder}")
        scheduler = Scheduler(opened, store_location=store_location(store), runs_dir=folder, log=terminal.info)
        scheduler.serve(stop)
    terminal.info("schedule server stopped")


def check_command(command: list[str]) -> None:
    """UsageError unless `command` parses as a meshload command line (options checked, nothing run)."""
    from . import app

    if not command:
        raise UsageError("give the command to fire after --, e.g. -- run --scenario bookinfo-productpage")
    root = typer.main.get_group(app)
    with root.make_context("meshload", [], resilient_parsing=True) as context:
        names = root.list_commands(context)
        subcommand = root.get_command(context, command[0])
    if subcommand is None or command[0] in NOT_SCHEDULABLE:
        allowed = ", ".join(name for name in names if name not in NOT_SCHEDULABLE)
        raise UsageError(f"{command[0]!r} is not a meshload command a schedule can fire; use one of {allowed}")
    try:
        subcommand.make_context(command[0], list(command[1:]))
    except typer.Exit:
        pass  # --help and the like: parsed fine
    except CLI_ERROR as exc:
        message = parse_error_message(exc)
        raise UsageError(f"the scheduled command `meshload {' '.join(command)}`: {message}") from exc


def _describe(firing: Firing) -> str:
    from ..history.records import format_time

    text = f"{format_time(firing.due_unix_ms)} {firing.status}"
    if firing.exit_code is not None:
        text += f" (exit {firing.exit_code})"
    return text


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app)
