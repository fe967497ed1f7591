"""Locustfiles as a plan's load: `meshload run --locustfile FILE` or a plan file's `locustfile:` key
names a file, or one of meshload's built-in locustfiles by name, and the plan carries its text.

The built-in locustfiles are package data of the Locust plugin (`meshload/locust/locustfiles/`),
found here by path: naming one never imports the plugin, whose import patches the process for
gevent. Only the file's syntax is checked here; importing it (its imports, its User classes) needs a
gevent process, which the engine's preparation gives (`worker/engine_process.py`).
"""

from __future__ import annotations

from pathlib import Path

from .plan import LocustUsers

BUILTIN_FOLDER = Path(__file__).resolve().parent.parent / "locust" / "locustfiles"


class LocustfileProblem(ValueError):
    """A locustfile that cannot be read; the message says what, and what to do (the caller says where)."""


def builtin_locustfiles() -> list[str]:
    """The names of the built-in locustfiles."""
    return sorted(path.stem for path in BUILTIN_FOLDER.glob("*.py") if not path.stem.startswith("_"))


def builtin_locustfile_path(name: str) -> Path:
    """The file of the built-in locustfile `name` (LocustfileProblem naming the choices if there is none)."""
    path = BUILTIN_FOLDER / f"{name}.py"
    if name.startswith("_") or "/" in name or not path.is_file():
        raise LocustfileProblem(f"no built-in locustfile {name!r}; choose one of: {', '.join(builtin_locustfiles())}")
    return path


def read_locustfile(name: str, *, base_dir: Path | None = None) -> LocustUsers:
    """The locustfile `name` stands for: a file (relative to `base_dir` when given, else to the working
    folder), or else a built-in locustfile's name; its syntax checked."""
    path = Path(name).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        if "/" in name or name.endswith(".py"):
            builtins = ", ".join(builtin_locustfiles())
            raise LocustfileProblem(f"{name!r}: no such file; give a locustfile's path, or a built-in one: {builtins}")
        try:
            path = builtin_locustfile_path(name)
        except LocustfileProblem:
            raise LocustfileProblem(
                f"{name!r} is neither a file nor a built-in locustfile ({', '.join(builtin_locustfiles())}); "
                "give a locustfile's path"
            ) from None
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LocustfileProblem(f"cannot read {path} ({exc}); give a readable Python file") from exc
    try:
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise LocustfileProblem(f"{path}:{exc.lineno}: {exc.msg}; fix the locustfile") from exc
    if not source.strip():
        raise LocustfileProblem(f"{path} is empty; a locustfile defines at least one User class")
    return LocustUsers(file=name, path=str(path.resolve()), source=source)
