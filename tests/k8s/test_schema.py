"""values.schema.json refuses a bad values file before anything is rendered, saying where and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from chart_check import CHART_DIR, check_values_file, render
from chart_values_table import leaves, schema_at

BAD_VALUES: list[tuple[dict[str, Any], list[str]]] = [
    ({"worker": {"replicas": -1}}, ["/worker/replicas", "minimum: got -1, want 0"]),
    ({"worker": {"replica": 3}}, ["/worker", "additional properties 'replica' not allowed"]),
    ({"wrker": {"replicas": 3}}, ["additional properties 'wrker' not allowed"]),
    ({"job": {"command": "benchmark"}}, ["/job/command", "'run'", "'study'"]),
    ({"worker": {"ceilings": {"maxDuration": "ten minutes"}}}, ["/worker/ceilings/maxDuration"]),
    ({"worker": {"replicas": "3"}}, ["/worker/replicas", "got string, want integer"]),
    ({"targets": [{"cidr": "10.0.0.0/8", "namespace": "shop", "ports": [80]}]}, ["/targets/0"]),
    ({"targets": [{"cidr": "10.0.0.0/8"}]}, ["/targets/0", "ports"]),
    ({"targets": [{"cidr": "10.0.0.0/8", "ports": [70000]}]}, ["/targets/0/ports/0", "maximum"]),
    ({"redis": {"mode": "external"}}, ["/redis/external/existingSecret"]),
    ({"cronJob": {"concurrencyPolicy": "Sometimes"}}, ["/cronJob/concurrencyPolicy"]),
    ({"securityContext": {"runAsUser": 0}}, ["/securityContext/runAsUser", "minimum"]),
]


@pytest.mark.parametrize(("values", "expected"), BAD_VALUES, ids=[json.dumps(v) for v, _ in BAD_VALUES])
def test_the_schema_refuses_bad_values_with_a_message_naming_the_key(
    values: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(helm.HelmValuesError) as raised:
        render(values)
    message = str(raised.value)
    for part in expected:
        assert part in message, message


def test_a_bad_values_file_fails_the_chart_check_with_helms_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("worker:\n  replicas: -1\n  replica: 3\n")
    report = check_values_file(bad)
    assert report.problems, "a bad values file passed"
    text = "\n".join(report.problems)
    assert "/worker/replicas" in text and "minimum: got -1, want 0" in text
    assert "additional properties 'replica' not allowed" in text
    good = tmp_path / "good.yaml"
    good.write_text("worker:\n  replicas: 0\n")
    assert check_values_file(good).problems == []


def test_a_job_without_a_plan_is_refused_with_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(
        helm.HelmRenderError, match=r"job\.plan is empty: give the plan \(or job\.existingPlanConfigMap\)"
    ):
        render({"job": {"enabled": True}})
    chart = render({"job": {"enabled": True, "existingPlanConfigMap": "my-plans"}})
    assert "my-plans" in json.dumps(chart.objects)


def test_every_value_has_a_type_and_a_description_in_the_schema() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    paths = [path for path, _ in leaves(values)]
    assert len(paths) > 80
    for path in paths:
        node = schema_at(schema, path)
        assert node.get("description"), f"{path} has no description in values.schema.json"
        assert "type" in node, f"{path} has no type in values.schema.json"
