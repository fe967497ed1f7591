"""The `meshload` command line. One module per command; each registers itself on `app` here."""

from __future__ import annotations

import os
import sys

import typer

from ..errors import MeshloadError as _MeshloadError
from . import terminal

__all__ = ["DEBUG_ENV", "app", "main"]

app = typer.Typer(
    name="meshload",
    help="Distributed, coordinated-omission-correct load generation for service-mesh studies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEBUG_ENV = "MESHLOAD_DEBUG"


def _register_commands() -> None:
    # Imported here so `meshload --help` stays fast and each command module stays independent.
    from . import commands  # noqa: F401  (registers every command on `app`)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line and an exit code, never a traceback."""
    _register_commands()
    try:
        app(args=argv, standalone_mode=False)
    except _MeshloadError as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        terminal.error(str(exc))
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        terminal.error("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        terminal.error("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive as click.exceptions.UsageError
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
