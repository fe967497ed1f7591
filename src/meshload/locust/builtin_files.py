"""Locustfiles that come with meshload (package data in `locustfiles/`), found by name:
`locustfile_path("bookinfo")`, or from a shell `locust -f $(python -m meshload.locust --path bookinfo)`."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

_FOLDER = Path(__file__).resolve().parent / "locustfiles"


def builtin_locustfiles() -> list[str]:
    """The names of the built-in locustfiles."""
    return sorted(path.stem for path in _FOLDER.glob("*.py") if not path.stem.startswith("_"))


def locustfile_path(name: str) -> Path:
    """The file of the built-in locustfile `name` (UsageError naming the choices if there is none)."""
    path = _FOLDER / f"{name}.py"
    if name.startswith("_") or not path.is_file():
        raise UsageError(f"no built-in locustfile {name!r}; choose one of: {', '.join(builtin_locustfiles())}")
    return path
