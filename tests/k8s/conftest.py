"""Fixtures for the chart's tests: the chart rendered with the real Helm engine (scripts/chart_check.py)
for the default values, each example values file, and a values set that turns every part on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import typer

import chart_check  # scripts/ is on the path (pyproject.toml, pytest's `pythonpath`)

from .chart_objects import ChartObjects

#: Every part of the chart on, with non-default values wherever a test checks that a value is used.
EVERYTHING: dict[str, Any] = {
    "targets": [
        {"cidr": "198.51.100.0/24", "except": ["198.51.100.128/25"], "ports": [8443], "hosts": ["api.example.net"]},
        {"namespace": "bookinfo", "podLabels": {"app": "productpage"}, "ports": [9080], "hosts": ["productpage"]},
    ],
    "worker": {
        "replicas": 5,
        "ceilings": {"maxRate": 1000000, "maxDuration": "90m", "maxConnections": 256},
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 2},
    },
    "coordinator": {"metrics": {"enabled": True, "port": 9555, "serviceMonitor": {"enabled": True}}},
    "job": {
        "enabled": True,
        "command": "run",
        "workers": 3,
        "args": ["--strict"],
        "plan": {"url": "http://api.example.net:8443/", "load": {"rate": 50}, "duration": "10s"},
    },
    "cronJob": {
        "enabled": True,
        "schedule": "17 4 * * 1",
        "timeZone": "Europe/Berlin",
        "command": "study",
        "successfulJobsHistoryLimit": 11,
        "failedJobsHistoryLimit": 13,
        "concurrencyPolicy": "Replace",
        "startingDeadlineSeconds": 321,
        "plan": {"name": "nightly", "load_levels": [10], "duration": "5s", "functions": ["none", "sidecar"]},
    },
    "networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1/32"], "ports": [443]}},
}

Render = Callable[..., ChartObjects]


def cli_command(name: str) -> Any:
    """The click command of `meshload NAME`, as `meshload` itself registers it."""
    from meshload.cli import app

    return typer.main.get_group(app).commands[name]


def cli_options(name: str) -> set[str]:
    """The option names `meshload NAME` accepts."""
    return {option for param in cli_command(name).params for option in getattr(param, "opts", [])}


@pytest.fixture(scope="session")
def render() -> Render:
    """render(values) -> the chart's objects for those values (release and namespace "perf")."""

    def render_values(values: dict[str, Any] | None = None, **options: str) -> ChartObjects:
        return ChartObjects(chart_check.render(values or {}, **options))

    return render_values


@pytest.fixture(scope="session")
def default_chart(render: Render) -> ChartObjects:
    return render({})


@pytest.fixture(scope="session")
def full_chart(render: Render) -> ChartObjects:
    return render(EVERYTHING)


@pytest.fixture(scope="session")
def example_charts(render: Render) -> dict[str, ChartObjects]:
    return {path.name: render(chart_check.load_values(path)) for path in chart_check.values_files()}
