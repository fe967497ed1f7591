"""The workers, the coordinator Job and CronJob, and what every object carries, as rendered."""

from __future__ import annotations

from typing import Any

import pytest

from .chart_objects import ChartObjects
from .conftest import EVERYTHING, Render

LABEL_KEYS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
WORKER_SELECTOR = {
    "app.kubernetes.io/name": "meshload",
    "app.kubernetes.io/instance": "perf",
    "app.kubernetes.io/component": "worker",
}


def test_every_object_and_pod_carries_the_recommended_labels(full_chart: ChartObjects) -> None:
    labelled: list[tuple[str, dict[str, str]]] = [
        (f"{obj['kind']}/{obj['metadata']['name']}", obj["metadata"].get("labels", {})) for obj in full_chart.objects
    ]
    labelled += [(f"pods of {t.owner}", t.labels) for t in full_chart.pod_templates()]
    for owner, labels in labelled:
        missing = [key for key in LABEL_KEYS if not labels.get(key)]
        assert not missing, f"{owner} lacks {missing}"
        assert labels["app.kubernetes.io/name"] == "meshload"
        assert labels["app.kubernetes.io/instance"] == "perf"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["app.kubernetes.io/part-of"] == "meshload"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "meshload-0.1.0"
    components = {labels["app.kubernetes.io/component"] for _, labels in labelled}
    assert components == {"fleet", "redis", "worker", "coordinator", "test", "test-echo"}
    for obj in full_chart.objects:  # a workload's selector picks its own pods
        selector = obj["spec"].get("selector", {}) if obj["kind"] in ("Deployment", "StatefulSet") else None
        if selector is not None:
            template = full_chart.pod_template(f"{obj['kind']}/{obj['metadata']['name']}")
            assert selector["matchLabels"].items() <= template.labels.items()


def test_workers_spread_across_nodes_and_zones(full_chart: ChartObjects, example_charts: dict[str, Any]) -> None:
    spec = full_chart.pod_template("Deployment/perf-meshload-worker").spec
    constraints = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}
    assert set(constraints) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in constraints.values():
        assert constraint["labelSelector"] == {"matchLabels": WORKER_SELECTOR}
        assert constraint["maxSkew"] == 1
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]  # only the current rollout's pods count
    across = example_charts["across-nodes.yaml"].pod_template("Deployment/perf-meshload-worker").spec
    by_key = {c["topologyKey"]: c["whenUnsatisfiable"] for c in across["topologySpreadConstraints"]}
    assert by_key == {"kubernetes.io/hostname": "DoNotSchedule", "topology.kubernetes.io/zone": "ScheduleAnyway"}


def test_topology_spread_follows_the_values(render: Render) -> None:
    only_zones = render({"worker": {"topologySpread": {"nodes": {"enabled": False}, "zones": {"maxSkew": 3}}}})
    [constraint] = only_zones.pod_template("Deployment/perf-meshload-worker").spec["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone" and constraint["maxSkew"] == 3
    neither = render({"worker": {"topologySpread": {"nodes": {"enabled": False}, "zones": {"enabled": False}}}})
    assert "topologySpreadConstraints" not in neither.pod_template("Deployment/perf-meshload-worker").spec


def test_the_disruption_budget_covers_the_workers(full_chart: ChartObjects, render: Render) -> None:
    budget = full_chart.one("PodDisruptionBudget")
    assert budget["spec"] == {"maxUnavailable": 2, "selector": {"matchLabels": WORKER_SELECTOR}}
    assert full_chart.get("Deployment", "perf-meshload-worker")["spec"]["replicas"] == 5
    assert not render({"worker": {"podDisruptionBudget": {"enabled": False}}}).of_kind("PodDisruptionBudget")


def _worker_container(chart: ChartObjects) -> dict[str, Any]:
    return chart.pod_template("Deployment/perf-meshload-worker").spec["containers"][0]


def test_worker_options_come_from_targets_and_ceilings(full_chart: ChartObjects, default_chart: ChartObjects) -> None:
    args = _worker_container(full_chart)["args"]
    assert args == [
        "worker",
        "--allow-target", "198.51.100.0/24",
        "--allow-target", "api.example.net",
        "--allow-target", "productpage",
        "--allow-target", "perf-meshload-test-echo",
        "--max-rate", "1000000",  # not 1e+06: the values arrive as floats
        "--max-duration", "90m",
        "--max-connections", "256",
    ]  # fmt: skip
    assert _worker_container(default_chart)["args"] == ["worker", "--allow-target", "perf-meshload-test-echo"]


def test_pods_stay_out_of_the_mesh_unless_told(full_chart: ChartObjects, render: Render) -> None:
    for template in full_chart.pod_templates():
        assert template.labels["sidecar.istio.io/inject"] == "false", template.owner
        assert template.labels["istio.io/dataplane-mode"] == "none", template.owner
        annotations = template.metadata["annotations"]
        assert annotations["linkerd.io/inject"] == "disabled", template.owner
        assert annotations["consul.hashicorp.com/connect-inject"] == "false", template.owner
    meshed = render({"meshExclusion": {"enabled": False}})
    for template in meshed.pod_templates():
        assert "sidecar.istio.io/inject" not in template.labels
        assert "linkerd.io/inject" not in template.metadata.get("annotations", {})
    assert "ZeroMQ" in full_chart.notes and "strict-mTLS" in full_chart.notes


def test_the_cronjob_takes_schedule_history_and_plan_from_the_values(full_chart: ChartObjects) -> None:
    cron = full_chart.one("CronJob")
    spec = cron["spec"]
    assert spec["schedule"] == "17 4 * * 1"
    assert spec["timeZone"] == "Europe/Berlin"
    assert spec["successfulJobsHistoryLimit"] == 11
    assert spec["failedJobsHistoryLimit"] == 13
    assert spec["concurrencyPolicy"] == "Replace"
    assert spec["startingDeadlineSeconds"] == 321
    assert spec["suspend"] is False
    pod = full_chart.pod_template(f"CronJob/{cron['metadata']['name']}")
    container = pod.spec["containers"][0]
    assert container["args"] == ["study", "/etc/meshload/plan/plan.yaml"]  # a study serves no metrics
    plan_volume = next(v for v in pod.spec["volumes"] if v["name"] == "plan")
    plan = full_chart.get("ConfigMap", plan_volume["configMap"]["name"])
    assert "load_levels:\n- 10\n" in plan["data"]["plan.yaml"]
    assert pod.spec["restartPolicy"] == "Never"


def test_the_job_runs_the_plan_on_the_fleet_scaled_for_it_and_serves_its_metrics(full_chart: ChartObjects) -> None:
    job = full_chart.one("Job")
    pod = full_chart.pod_template(f"Job/{job['metadata']['name']}")
    container = pod.spec["containers"][0]
    assert container["args"] == [
        "run", "--scenario", "/etc/meshload/plan/plan.yaml", "--workers", "k8s:3",
        "--metrics-port", "9555", "--metrics-address", "0.0.0.0", "--strict",
    ]  # fmt: skip
    assert container["workingDir"] == "/reports"
    assert {"name": "metrics", "containerPort": 9555, "protocol": "TCP"} in container["ports"]
    annotations = pod.metadata["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9555"
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["MESHLOAD_K8S_WORKER_DEPLOYMENT"]["value"] == "perf-meshload-worker"
    assert env["MESHLOAD_K8S_WORKER_SELECTOR"]["value"] == ",".join(
        f"{k}={v}" for k, v in sorted(WORKER_SELECTOR.items())
    )
    assert env["MESHLOAD_RESULTS_TTL"]["value"] == "720h"
    assert env["MESHLOAD_NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts == {"plan": "/etc/meshload/plan", "reports": "/reports", "tmp": "/tmp"}
    reports = next(v for v in pod.spec["volumes"] if v["name"] == "reports")
    claim = full_chart.get("PersistentVolumeClaim", reports["persistentVolumeClaim"]["claimName"])
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    service = full_chart.get("Service", "perf-meshload-metrics")
    assert service["spec"]["selector"].items() <= pod.labels.items()
    monitor = full_chart.one("ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == [service["spec"]["ports"][0]["name"]]


def test_a_job_is_a_new_run_only_when_its_spec_or_plan_changes(render: Render) -> None:
    base = {"job": {"enabled": True, "plan": {"url": "http://a/", "load": {"rate": 5}}}}

    def job_name(values: dict[str, Any]) -> str:
        return str(render(values).one("Job")["metadata"]["name"])

    first = job_name(base)
    assert first.startswith("perf-meshload-run-")
    assert job_name(base) == first
    assert job_name({**base, "worker": {"replicas": 9}}) == first  # scaling the fleet starts no run
    assert job_name({"job": {**base["job"], "plan": {"url": "http://a/", "load": {"rate": 6}}}}) != first
    assert job_name({"job": {**base["job"], "args": ["--strict"]}}) != first
    assert job_name({"job": {**base["job"], "name": "again"}}) == "again"
    without_claim = render({**base, "coordinator": {"reports": {"persistence": {"enabled": False}}}})
    assert not without_claim.of_kind("PersistentVolumeClaim")
    job = f"Job/{without_claim.one('Job')['metadata']['name']}"
    reports = next(v for v in without_claim.pod_template(job).spec["volumes"] if v["name"] == "reports")
    assert reports == {"name": "reports", "emptyDir": {}}


def test_the_helm_test_runs_a_tiny_run_through_the_fleet_against_its_echo(default_chart: ChartObjects) -> None:
    hooks = {f"{obj['kind']}/{obj['metadata']['name']}": obj for obj in default_chart.rendered.hooks()}
    assert set(hooks) == {
        "Deployment/perf-meshload-test-echo",
        "Service/perf-meshload-test-echo",
        "Pod/perf-meshload-test-run",
    }
    weights = {name: int(obj["metadata"]["annotations"]["helm.sh/hook-weight"]) for name, obj in hooks.items()}
    assert weights["Pod/perf-meshload-test-run"] > weights["Deployment/perf-meshload-test-echo"]  # echo first
    pod = hooks["Pod/perf-meshload-test-run"]
    script = pod["spec"]["containers"][0]["args"][0]
    assert 'meshload run "$ECHO_URL" --placement fleet --workers 1 --rate 20' in script
    assert "--strict" not in script and '.get("200", 0)' in script  # wiring, not the busy cluster's timing
    env = {entry["name"]: entry.get("value") for entry in pod["spec"]["containers"][0]["env"]}
    assert env["ECHO_URL"] == "http://perf-meshload-test-echo:8080/"
    service = hooks["Service/perf-meshload-test-echo"]
    echo_pod_labels = hooks["Deployment/perf-meshload-test-echo"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= echo_pod_labels.items()


@pytest.mark.parametrize("values", [{"tests": {"enabled": False}}])
def test_without_the_test_hook_the_workers_allow_nothing_extra(render: Render, values: dict[str, Any]) -> None:
    chart = render({**EVERYTHING, **values})
    assert not chart.rendered.hooks()
    assert "perf-meshload-test-echo" not in _worker_container(chart)["args"]


def test_results_are_not_kept_in_redis_when_turned_off(render: Render) -> None:
    chart = render(
        {"job": {"enabled": True, "plan": {"url": "http://a/"}}, "coordinator": {"resultsInRedis": {"enabled": False}}}
    )
    container = chart.pod_template(f"Job/{chart.one('Job')['metadata']['name']}").spec["containers"][0]
    env = {entry["name"]: entry.get("value") for entry in container["env"]}
    assert env["MESHLOAD_RESULTS_TTL"] == "0"  # meshload's own default would keep them
