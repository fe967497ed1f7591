"""Pydantic's validation errors, retold as one `PlanError` line that points at the file and line.

Pydantic locates each error by a `loc` tuple in the model's own field names; the file models use the
file's key names, so a `loc` is also the key path into the file, and `SourceDocument` knows its line.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import PlanError
from .source import KeyPath, SourceDocument


def plan_error_from(exc: ValidationError, document: SourceDocument, model: type[BaseModel]) -> PlanError:
    """The first problem of `exc` (in file order) as a PlanError; the count of the others is appended."""
    problems = exc.errors(include_url=False)
    ordered = sorted(problems, key=lambda problem: document.line_of(tuple(problem["loc"])) or 0)
    first = ordered[0]
    path: KeyPath = tuple(first["loc"])
    message = describe(first, model)
    if len(ordered) > 1:
        others = len(ordered) - 1
        message += f" (and {others} more problem{'s' if others > 1 else ''})"
    return document.error(path, message)


def describe(problem: ErrorDetails, model: type[BaseModel]) -> str:
    """One pydantic error as a short sentence in the file's words: "must be greater than 0 (got -5)"."""
    kind = problem["type"]
    context = problem.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        parent = model_at(model, tuple(problem["loc"])[:-1])
        allowed = ", ".join(parent.model_fields) if parent else "see FORMAT.md"
        return f"unknown key; the keys allowed here are: {allowed}"
    if kind == "value_error":
        return str(context.get("error", problem["msg"]))
    bounds = {
        "greater_than": "must be greater than {gt}",
        "greater_than_equal": "must be at least {ge}",
        "less_than": "must be less than {lt}",
        "less_than_equal": "must be at most {le}",
        "too_short": "must have at least {min_length} item(s)",
        "too_long": "must have at most {max_length} item(s)",
    }
    if kind in bounds:
        numbers = {key: f"{value:g}" if isinstance(value, (int, float)) else value for key, value in context.items()}
        message = bounds[kind].format(**numbers)
    else:
        message = (
            problem["msg"].replace("Input should be", "must be").replace("a valid dictionary", "a mapping (key: value)")
        )
        message = message[:1].lower() + message[1:]
    value = problem.get("input")
    if isinstance(value, (str, int, float, bool)) and kind not in ("too_short", "too_long"):
        message += f" (got {value!r})"
    return message


def model_at(model: type[BaseModel], path: KeyPath) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path` (list indexes and dict keys skipped)."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _inner_model(current.model_fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside `X | None`, `list[X]`, `tuple[X, ...]` or `Annotated[X, ...]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return None
    for argument in typing.get_args(annotation):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None
