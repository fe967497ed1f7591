"""`make chart-check` passes for the chart as it is, and fails where it should: an unknown field, an API
a Kubernetes version does not serve, a mistyped ServiceMonitor, a bad Dockerfile."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import chart_check

from .chart_objects import ChartObjects
from .conftest import EVERYTHING


@pytest.mark.parametrize("name", ["default values", *(path.name for path in chart_check.values_files())])
def test_the_chart_renders_lints_and_validates_for_each_values_file(name: str) -> None:
    path = None if name == "default values" else chart_check.EXAMPLES_DIR / name
    report = chart_check.check_values_file(path)
    assert report.problems == []
    assert report.objects >= 9 and report.hooks == 3


def test_every_part_turned_on_at_once_lints_and_validates(full_chart: ChartObjects) -> None:
    for version in chart_check.KUBE_VERSIONS:
        assert chart_check.lint(EVERYTHING, version) == []
        for obj in full_chart.objects:
            assert chart_check.validate_object(obj, version) is None, chart_check.describe(obj)


def test_the_examples_cover_every_part_of_the_chart(example_charts: dict[str, ChartObjects]) -> None:
    kinds = {obj["kind"] for chart in example_charts.values() for obj in chart.objects}
    assert kinds >= {"StatefulSet", "Deployment", "Job", "CronJob", "ServiceMonitor", "NetworkPolicy", "Role", "Pod"}
    assert len(chart_check.KUBE_VERSIONS) == 2 and chart_check.KUBE_VERSIONS[0] == "1.28.0"


def test_validation_is_strict_and_per_version(full_chart: ChartObjects) -> None:
    deployment = copy.deepcopy(full_chart.get("Deployment", "perf-meshload-worker"))
    for version in chart_check.KUBE_VERSIONS:
        assert chart_check.validate_object(deployment, version) is None
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    for version in chart_check.KUBE_VERSIONS:
        problem = chart_check.validate_object(deployment, version)
        assert problem is not None and "imagePullPolcy" in problem
    cron = copy.deepcopy(full_chart.one("CronJob"))
    cron["apiVersion"] = "batch/v1beta1"  # removed in 1.25
    assert "Couldn't find schema" in str(chart_check.validate_object(cron, chart_check.KUBE_VERSIONS[1]))
    pdb = copy.deepcopy(full_chart.one("PodDisruptionBudget"))
    pdb["spec"]["maxUnavailable"] = {"count": 1}
    assert chart_check.validate_object(pdb, "1.28.0") is not None


def test_the_service_monitor_is_checked_against_its_fields(full_chart: ChartObjects) -> None:
    monitor = copy.deepcopy(full_chart.one("ServiceMonitor"))
    assert chart_check.validate_object(monitor, "1.28.0") is None
    monitor["spec"]["endpoints"][0]["intervall"] = "5s"
    assert "intervall" in str(chart_check.validate_object(monitor, "1.28.0"))
    monitor = copy.deepcopy(full_chart.one("ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "5 seconds"
    assert chart_check.validate_object(monitor, "1.28.0") is not None


def test_hadolint_passes_the_dockerfile_and_catches_a_bad_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert chart_check.check_dockerfile().problems == []
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /tmp && pip install meshload\n")
    monkeypatch.setattr(chart_check, "DOCKERFILE", bad)
    problems = "\n".join(chart_check.check_dockerfile().problems)
    assert "DL3006" in problems  # an image without a tag
    assert "DL3003" in problems  # cd instead of WORKDIR
