"""`meshload history`: the runs and studies recorded in the history store, and `history import DIR...`
to record run and study folders written before (or elsewhere)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from . import terminal
from .history_hook import StoreOption

if TYPE_CHECKING:
    from ..history.records import HistoryRecord, Kind

history_app = typer.Typer(
    name="history",
    help="List the runs and studies recorded in the history store; `history import DIR...` records folders.",
    no_args_is_help=False,
    invoke_without_command=True,
)

LabelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--label",
        "-l",
        envvar="MESHLOAD_HISTORY_LABELS",
        show_envvar=True,
        help="Only records with label k=v (repeatable).",
    ),
]
PlanOption = Annotated[
    str | None,
    typer.Option("--plan", envvar="MESHLOAD_HISTORY_PLAN", show_envvar=True, help="Only this plan's records."),
]
DEFAULT_LIMIT = 50


@history_app.callback()
def history(
    ctx: typer.Context,
    label: LabelOption = None,
    plan: PlanOption = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            envvar="MESHLOAD_HISTORY_KIND",
            show_envvar=True,
            help="run, study, cell (a study's runs) or all; default: runs and studies.",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", envvar="MESHLOAD_HISTORY_LIMIT", show_envvar=True, help="At most this many, newest first."
        ),
    ] = DEFAULT_LIMIT,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", envvar="MESHLOAD_HISTORY_JSON", show_envvar=True, help="Print the records as JSON on stdout."
        ),
    ] = False,
    store: StoreOption = None,
) -> None:
    """List recorded runs and studies, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from ..history.store import open_store

    kinds = _kinds(kind)
    if limit < 1:
        raise UsageError(f"--limit: {limit} is not a count; use 1 or more")
    with open_store(store) as opened:
        records = opened.records(plan=plan, labels=parse_labels(label or []), kinds=kinds, limit=limit)
        if as_json:
            terminal.result(json.dumps([_as_json(record) for record in records], indent=1))
            return
        if not records:
            terminal.info(f"no record matches in {opened.display}")
            return
        terminal.table(history_table(records, title=f"history: {opened.display}"))


@history_app.command("import")
def import_folders(
    folders: Annotated[
        list[Path] | None,
        typer.Argument(help="Run folders (smp.json) or study folders (study.json).", show_default=False),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Record run and study folders in the history store (a folder recorded before is updated)."""
    from ..history.records import record_from_run_folder, records_from_study_folder
    from ..history.store import open_store
    from ..results.outputs import SMP_FILE
    from ..results.study_json import STUDY_FILE

    if not folders:
        raise UsageError("give the run or study folders to record, e.g. meshload history import runs/*")
    batches: list[tuple[Path, list[HistoryRecord]]] = []
    for folder in folders:
        if (folder / STUDY_FILE).is_file():
            try:
                batches.append((folder, records_from_study_folder(folder)))
            except (ValueError, KeyError, TypeError) as exc:
                raise UsageError(f"{folder / STUDY_FILE}: not a readable meshload study ({exc})") from exc
        elif (folder / SMP_FILE).is_file():
            batches.append((folder, [record_from_run_folder(folder)]))
        else:
            raise UsageError(
                f"{folder}: neither a run folder ({SMP_FILE}) nor a study folder ({STUDY_FILE}); "
                "give folders `meshload run --out` or `meshload study --out` wrote"
            )
    with open_store(store) as opened:
        for folder, records in batches:
            opened.record(*records)
            what = "run" if records[0].kind == "run" else f"study with {len(records) - 1} cells"
            terminal.info(f"recorded {what} {records[0].key} from {folder}")
        terminal.success(f"{sum(len(records) for _, records in batches)} record(s) in {opened.display}")


def parse_labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--label {pair!r} is not key=value; write e.g. --label function=mtls")
        labels[key] = value
    return labels


def _kinds(kind: str | None) -> list[Kind] | None:
    if kind is None:
        return ["run", "study"]
    choices: dict[str, list[Kind] | None] = {
        "all": None,
        "run": ["run"],
        "study": ["study"],
        "cell": ["cell"],
    }
    if kind not in choices:
        raise UsageError(f"--kind: {kind!r} is not one of run, study, cell, all")
    return choices[kind]


def history_table(records: list[HistoryRecord], *, title: str) -> object:
    """A rich table of records (newest first as given)."""
    from rich.table import Table

    from ..history.records import format_time
    from ..results.charts import format_value

    table = Table(title=title)
    right = ("requests", "rps", "p50 ms", "p99 ms", "p99.9 ms", "errors %", "proxy CPU mc")
    for heading in ("started", "kind", "plan", "id", "labels", *right, "valid", "files"):
        table.add_column(heading, justify="right" if heading in right else "left", overflow="fold")
    for record in records:
        table.add_row(
            format_time(record.started_unix_ms),
            record.kind,
            record.plan_name,
            record.key,
            " ".join(f"{k}={v}" for k, v in sorted(record.labels.items()) if not k.startswith("meshload.")),
            f"{record.requests:,}",
            format_value(record.rate_rps),
            format_value(record.figure("p50_ms")),
            format_value(record.figure("p99_ms")),
            format_value(record.figure("p99_9_ms")),
            format_value(record.figure("error_rate_pct")),
            format_value(record.figure("proxy_cpu_mcores")),
            ("yes" if record.valid else "NO") + (" (degraded)" if record.degraded else ""),
            record.location,
        )
    return table


def _as_json(record: HistoryRecord) -> dict[str, object]:
    return asdict(record)  # the figures' estimates become {"value", "low", "high"}


def register(app: typer.Typer) -> None:
    app.add_typer(history_app)
