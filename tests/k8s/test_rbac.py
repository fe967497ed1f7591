"""The coordinator's rights are exactly what scaling the workers needs, and nobody else has any."""

from __future__ import annotations

from .chart_objects import ChartObjects
from .conftest import Render

WORKER_DEPLOYMENT = "perf-meshload-worker"
#: The whole grant; the Kubernetes placement of `meshload run --workers k8s:N` uses these verbs only.
EXPECTED_RULES = [
    {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "resourceNames": [WORKER_DEPLOYMENT],
        "verbs": ["get", "patch"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
]


def test_the_coordinator_role_grants_only_scaling_the_worker_deployment_and_reading_pods(
    full_chart: ChartObjects,
) -> None:
    role = full_chart.one("Role")
    assert role["rules"] == EXPECTED_RULES
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(key, []), f"wildcard in {key}: {rule}"
        assert not rule.get("nonResourceURLs")
    assert full_chart.names("Deployment").count(WORKER_DEPLOYMENT) == 1  # resourceNames names a real object
    assert not full_chart.of_kind("ClusterRole")
    assert not full_chart.of_kind("ClusterRoleBinding")


def test_only_the_coordinator_pods_carry_the_bound_identity_and_a_token(full_chart: ChartObjects) -> None:
    binding = full_chart.one("RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": full_chart.one("Role")["metadata"]["name"],
    }
    [subject] = binding["subjects"]
    assert subject == {"kind": "ServiceAccount", "name": "perf-meshload-coordinator", "namespace": "perf"}
    for template in full_chart.pod_templates():
        component = template.labels["app.kubernetes.io/component"]
        if component == "coordinator":
            assert template.spec["serviceAccountName"] == subject["name"], template.owner
            assert template.spec["automountServiceAccountToken"] is True, template.owner
        else:
            assert template.spec["serviceAccountName"] != subject["name"], template.owner
            assert template.spec["automountServiceAccountToken"] is False, template.owner
    accounts = {account["metadata"]["name"]: account for account in full_chart.of_kind("ServiceAccount")}
    assert accounts["perf-meshload"]["automountServiceAccountToken"] is False


def test_no_role_without_a_coordinator_or_with_rbac_off(default_chart: ChartObjects, render: Render) -> None:
    assert not default_chart.of_kind("Role")  # no Job, no CronJob: nothing in the release uses the API
    assert not default_chart.of_kind("RoleBinding")
    chart = render({"rbac": {"create": False}, "job": {"enabled": True, "plan": {"url": "http://x/"}}})
    assert not chart.of_kind("Role")
    assert chart.pod_template(f"Job/{chart.names('Job')[0]}").spec["automountServiceAccountToken"] is False
