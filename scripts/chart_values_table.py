#!/usr/bin/env python3
"""The values table of k8s/README.md, made from the chart's values.yaml (defaults) and
values.schema.json (meanings), so the table cannot drift from the chart.

    python scripts/chart_values_table.py           # print the table
    python scripts/chart_values_table.py --write   # put it into k8s/README.md between the markers
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from readme_block import main

REPO = Path(__file__).resolve().parents[1]
CHART_DIR = REPO / "k8s" / "meshload"
README = REPO / "k8s" / "README.md"
START = "<!-- values table: made by scripts/chart_values_table.py --write -->"
END = "<!-- end of values table -->"
#: Maps users fill in freely (labels, selectors, resource quantities) are one value, not a subtree.
FREE_MAPS = ("Selector", "Labels", "labels", "Annotations", "annotations", "requests", "limits", "plan")


def leaves(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, default) of every value, in the order of values.yaml."""
    found: list[tuple[str, Any]] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not key.endswith(FREE_MAPS):
            found.extend(leaves(value, f"{path}."))
        else:
            found.append((path, value))
    return found


def schema_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The schema of a dotted path, a $ref to the definitions resolved (the path's own keys win)."""
    node = schema
    for key in path.split("."):
        node = node["properties"][key]
        if "$ref" in node:
            node = {**schema["definitions"][node["$ref"].rsplit("/", 1)[-1]], **node}
    return node


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table() -> str:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    rows = ["| value | default | meaning |", "|---|---|---|"]
    for path, default in leaves(values):
        shown = json.dumps(default, separators=(", ", ": "))
        rows.append(f"| `{path}` | `{_cell(shown)}` | {_cell(schema_at(schema, path)['description'])} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], make=table, readme=README, start=START, end=END, usage=__doc__ or ""))
