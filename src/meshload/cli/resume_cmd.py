"""`meshload resume RUN_ID --redis URL`: reattach to a detached run whose coordinator died, read
every record it published (those the dead coordinator had taken included), and write the reports a
coordinator that never died would have written.

Exit code: as `meshload run`'s (0, or 1 with `--strict` for an invalid or degraded run; 2 for a
usage error such as a run that cannot be resumed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import terminal
from .history_hook import HistoryOption, StoreOption, record_run
from .options import env_var, option


def resume(
    run_id: Annotated[str, typer.Argument(help="The run's id (in its report, its folder's name, its log).")],
    redis_url: Annotated[
        str,
        option(
            "--redis",
            env="REDIS",
            help=f"The external Redis the run reported to (with a password, give it in {env_var('REDIS')}).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        option("--out", "-o", env="OUT", help="Output folder (default: the one the run was started with)."),
    ] = None,
    strict: Annotated[
        bool, option("--strict", env="STRICT", help="Exit 1 when the run is invalid or degraded.")
    ] = False,
    live: Annotated[bool, option("--live/--no-live", env="LIVE", help="Show live progress on stderr.")] = True,
    store: StoreOption = None,
    history: HistoryOption = True,
) -> None:
    """Finish a run whose coordinator died: its workers went on; collect everything and write the reports."""
    from ..coordinator.resume import resume_run
    from .run_outcome import exit_code_for, tell_outcome

    terminal.info(f"resuming run {run_id}")
    result, out_dir = resume_run(run_id, redis_url, out_dir=out, live=live)
    tell_outcome(result, out_dir)
    record_run(result, out_dir, store=store, enabled=history)
    code = exit_code_for(result, strict=strict)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)
