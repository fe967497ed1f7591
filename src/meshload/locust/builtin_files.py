"""Locustfiles that come with meshload (package data in `locustfiles/`), found by name:
`locustfile_path("bookinfo")`, or from a shell `locust -f $(python -m meshload.locust --path bookinfo)`.
`meshload run --locustfile bookinfo` finds them the same way (`scenarios.locustfiles`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..scenarios.locustfiles import LocustfileProblem, builtin_locustfile_path, builtin_locustfiles

__all__ = ["builtin_locustfiles", "locustfile_path"]


def locustfile_path(name: str) -> Path:
    """The file of the built-in locustfile `name` (UsageError naming the choices if there is none)."""
    try:
        return builtin_locustfile_path(name)
    except LocustfileProblem as exc:
        raise UsageError(str(exc)) from None
