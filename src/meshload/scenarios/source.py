"""A plan file read into plain data, remembering the line of every key, so errors can say where.

YAML's composer gives each node a mark (line, column); walking the node tree once maps every key path,
e.g. `("load", "stages", 0, "duration")`, to the line that holds it. JSON is read by the same YAML
parser (JSON is YAML for the files people write), falling back to `json` for the rare JSON that
PyYAML refuses (tabs as indentation), in which case only syntax errors carry a line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import PlanError

KeyPath = tuple[str | int, ...]
LineMap = dict[KeyPath, int]


def dotted(path: KeyPath) -> str:
    """`("load", "stages", 0, "rate")` as people read it: `load.stages[0].rate`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


@dataclass
class SourceDocument:
    """The data of one file, its name as the user gave it, and the line of each key path."""

    name: str
    data: Any
    lines: LineMap = field(default_factory=dict)
    # Key paths whose value was set from elsewhere than the file, and where it came from.
    origins: dict[KeyPath, str] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest ancestor present in the file (for a missing key)."""
        if self.origin_of(path) is not None:
            return None
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def origin_of(self, path: KeyPath) -> str | None:
        """Where the value at `path` came from, when not from the file."""
        for end in range(len(path), 0, -1):
            origin = self.origins.get(tuple(path[:end]))
            if origin is not None:
                return origin
        return None

    def error(self, path: KeyPath, message: str) -> PlanError:
        """A `PlanError` for the key at `path`: `file:line: dotted.path: message`."""
        origin = self.origin_of(path)
        if origin is not None:
            message += f" (value from {origin})"
        return PlanError(f"{dotted(path)}: {message}", path=self.name, line=self.line_of(path))

    def set_from(self, path: KeyPath, value: Any, origin: str) -> None:
        """Set (or, for None, remove) the value at `path`, noting that it came from `origin`."""
        size = len(path)
        for key in [key for key in self.lines if key[:size] == path]:
            del self.lines[key]
        self.origins[path] = origin
        mapping = self.data
        for part in path[:-1]:
            if not isinstance(mapping.get(part), dict):
                mapping[part] = {}
            mapping = mapping[part]
        if value is None:
            mapping.pop(path[-1], None)
        else:
            mapping[path[-1]] = value

    def with_keys(self, rename: Callable[[str], str]) -> SourceDocument:
        """The same document with every mapping key passed through `rename` (data and lines)."""

        def renamed_path(path: KeyPath) -> KeyPath:
            return tuple(rename(part) if isinstance(part, str) else part for part in path)

        return SourceDocument(
            self.name,
            _rename_keys(self.data, rename),
            {renamed_path(path): line for path, line in self.lines.items()},
            {renamed_path(path): origin for path, origin in self.origins.items()},
        )


def read_document(path: Path, *, display_name: str | None = None) -> SourceDocument:
    """Read a YAML or JSON file into a `SourceDocument`; unreadable or malformed files raise PlanError."""
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError("no such file; give a plan file path or a built-in scenario name", path=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read the file ({exc})", path=name) from exc
    return parse_document(text, name=name, json_fallback=path.suffix.lower() == ".json")


def parse_document(text: str, *, name: str, json_fallback: bool = False) -> SourceDocument:
    """Parse YAML (or JSON) `text`, mapping each key path to its line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        if json_fallback:
            return _parse_json(text, name=name)
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed"
        raise PlanError(f"not valid YAML: {problem}", path=name, line=mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise PlanError(f"not valid YAML: {exc}", path=name) from exc
    if root is None:
        raise PlanError("the file is empty; see the plan file format in meshload/scenarios/FORMAT.md", path=name)
    lines: LineMap = {}
    _map_lines(root, (), lines, name)
    return SourceDocument(name, data, lines)


def _parse_json(text: str, *, name: str) -> SourceDocument:
    try:
        return SourceDocument(name, json.loads(text))
    except json.JSONDecodeError as exc:
        raise PlanError(f"not valid JSON: {exc.msg}", path=name, line=exc.lineno) from exc


def _map_lines(node: yaml.Node, path: KeyPath, lines: LineMap, name: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise PlanError(
                    f"{dotted((*path, key))}: duplicate key; keep one",
                    path=name,
                    line=key_node.start_mark.line + 1,
                )
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _map_lines(value_node, (*path, key), lines, name)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _map_lines(item, (*path, index), lines, name)


def _rename_keys(data: Any, rename: Callable[[str], str]) -> Any:
    if isinstance(data, dict):
        return {
            rename(key) if isinstance(key, str) else key: _rename_keys(value, rename) for key, value in data.items()
        }
    if isinstance(data, list):
        return [_rename_keys(item, rename) for item in data]
    return data
