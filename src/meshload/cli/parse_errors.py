"""The CLI library's own errors (a bad value, an unknown option or command), found where every typer
release keeps them, and told as one line."""

from __future__ import annotations

import typer

#: The base of the parse errors: click's ClickException. Typer 0.26+ carries its own copy of click and
#: exports it only through this subclass; older typer used the installed click. Either way it is found
#: from typer itself, never imported from a click package typer may not use.
CLI_ERROR: type[Exception] = next(base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException")


def parse_error_message(exc: Exception) -> str:
    """The library's message for a parse error, on one line ("" for "no arguments, help shown")."""
    return " ".join(str(getattr(exc, "format_message", exc.__str__)()).split())
