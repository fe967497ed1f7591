"""The one place that talks to the terminal: status and errors go to stderr, results to stdout.

The CLI's commands and the coordinator's live view print only through these functions (it imports
nothing of meshload, so every layer may use it), so `--json` output on stdout stays
machine-readable and rich's markup, emoji and highlighting never rewrite a message.
"""

from __future__ import annotations

import sys

from rich.console import Console

# Piped or redirected output is read in files and logs, not an 80-column terminal: tables get room.
_PIPED_WIDTH = 160
stdout = Console(
    highlight=False, emoji=False, markup=False, soft_wrap=True, width=None if sys.stdout.isatty() else _PIPED_WIDTH
)
stderr = Console(stderr=True, highlight=False, emoji=False, markup=False, soft_wrap=True)


def info(message: str) -> None:
    stderr.print(message)


def success(message: str) -> None:
    stderr.print(message, style="green")


def warning(message: str) -> None:
    stderr.print(f"warning: {message}", style="yellow")


def error(message: str) -> None:
    stderr.print(f"error: {message}", style="bold red")


def result(text: str) -> None:
    """Plain output meant for stdout (JSON, paths, tables)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def interactive() -> bool:
    return stderr.is_terminal


def table(renderable: object) -> None:
    """A rich table (or other renderable) on stdout, for summaries people read."""
    stdout.print(renderable)
