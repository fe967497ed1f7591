"""k8s/README.md's values table is the chart's values and meanings, as made from the chart."""

from __future__ import annotations

import yaml

from chart_values_table import CHART_DIR, END, README, START, leaves, table
from readme_block import block_between


def test_the_readme_values_table_is_the_one_made_from_the_chart() -> None:
    shown = block_between(README.read_text(), START, END)
    assert shown == table().strip(), "run: python scripts/chart_values_table.py --write"
    for path, _ in leaves(yaml.safe_load((CHART_DIR / "values.yaml").read_text())):
        assert f"| `{path}` |" in shown
