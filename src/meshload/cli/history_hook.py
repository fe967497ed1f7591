"""The `--store` and `--no-history` options, and recording a finished run or study in the history.

`meshload run` and `meshload study` call `record_run`/`record_study` once their files are written.
The files stay the source of truth: when the store cannot be written the command warns and says how
to record the folder later (`meshload history import`), and its exit code still tells how the run went.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import MeshloadError
from . import terminal

if TYPE_CHECKING:
    from ..history.records import HistoryRecord
    from ..results.run_result import RunResult
    from ..results.study_result import StudyResult

STORE_ENV = "MESHLOAD_STORE"
HISTORY_ENV = "MESHLOAD_HISTORY"

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar=STORE_ENV,
        show_envvar=True,
        help="History store: a SQLite file, or postgresql://user:password@host/db "
        "(default: $XDG_DATA_HOME/meshload/history.db, else ~/.local/share/meshload/history.db).",
    ),
]
HistoryOption = Annotated[
    bool,
    typer.Option(
        "--history/--no-history",
        envvar=HISTORY_ENV,
        show_envvar=True,
        help="Record the result in the history store (see `meshload history`).",
    ),
]


def record_run(result: RunResult, out_dir: Path, *, store: str | None, enabled: bool) -> None:
    """Record a finished run (its files are in `out_dir`)."""
    if not enabled:
        return
    from ..history.records import record_from_run

    _record(lambda: [record_from_run(result, str(out_dir.resolve()))], out_dir, store)


def record_study(study: StudyResult, out_dir: Path, *, store: str | None, enabled: bool) -> None:
    """Record a finished study and each of its cells (its files are in `out_dir`)."""
    if not enabled:
        return
    from ..history.records import records_from_study

    _record(lambda: records_from_study(study, out_dir.resolve()), out_dir, store)


def _record(build: Callable[[], list[HistoryRecord]], out_dir: Path, store: str | None) -> None:
    from ..history.store import open_store

    try:
        records = build()
        with open_store(store) as opened:
            opened.record(*records)
            terminal.info(f"recorded in the history store {opened.display}")
    except MeshloadError as exc:
        terminal.warning(
            f"{exc}; the results are in {out_dir}: record them later with `meshload history import {out_dir}`"
        )
