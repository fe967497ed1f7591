"""The `meshload` command line: one module per command, each registered here by name.

`main()` is the console script: user errors (`MeshloadError`) and the CLI library's own parse
errors become one line and an exit code (2 for usage), never a traceback; any other exception is
a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
import typing

import typer

from .. import __version__, terminal
from ..errors import MeshloadError as _MeshloadError
from . import (
    compare_cmd,
    history_cmd,
    mesh_cmd,
    report_cmd,
    results_cmd,
    resume_cmd,
    run_cmd,
    schedule_cmd,
    study_cmd,
    testbed_cmd,
    trend_cmd,
    worker_cmd,
)
from .parse_errors import CLI_ERROR as _CLI_ERROR
from .parse_errors import parse_error_message as _parse_error_message

__all__ = ["DEBUG_ENV", "app", "main"]

DEBUG_ENV = "MESHLOAD_DEBUG"

app = typer.Typer(
    name="meshload",
    help="Distributed, coordinated-omission-correct load generation for service-mesh studies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Every command, explicitly: a missing or broken command module fails at start, loudly.
for _command in (
    run_cmd,
    worker_cmd,
    testbed_cmd,
    study_cmd,
    report_cmd,
    compare_cmd,
    mesh_cmd,
    history_cmd,
    trend_cmd,
    schedule_cmd,
    results_cmd,
    resume_cmd,
):
    _command.register(app)


def _print_version(value: bool) -> None:
    if value:
        terminal.result(f"meshload {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: typing.Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Distributed, coordinated-omission-correct load generation for service-mesh studies."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: returns on success, else exits with the command's exit code."""
    try:
        # Not standalone: errors come here to be one line; a `typer.Exit(code)` comes back as `code`.
        code = app(args=argv, prog_name="meshload", standalone_mode=False)
    except _MeshloadError as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        terminal.error(str(exc))
        sys.exit(exc.exit_code)
    except _CLI_ERROR as exc:
        message = _one_line(exc)
        if message:  # (empty when the error is "no arguments": the help was shown instead)
            terminal.error(message)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        terminal.error("aborted")
        sys.exit(130)
    except KeyboardInterrupt as exc:
        # Ctrl-C, or a stop signal turned into `interrupts.Interrupted`: the shell's 128 + signal number.
        terminal.error(f"interrupted ({exc})" if str(exc) else "interrupted")
        sys.exit(getattr(exc, "exit_code", 130))
    if isinstance(code, int) and code:
        sys.exit(code)


def _one_line(exc: Exception) -> str:
    """A parse error as one line: what was wrong, and where to read how to write it."""
    message = _parse_error_message(exc)
    if not message:
        return ""
    context = getattr(exc, "ctx", None)
    command = getattr(context, "command_path", None) or "meshload"
    return f"{message} (see `{command} --help`)"
