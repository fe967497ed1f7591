"""Fixtures for the chart's tests: the chart rendered with the real Helm engine (scripts/chart_check.py)
for the default values, each example values file, and a values set that turns every part on; and, for
the Kubernetes placement, a Kubernetes API stand-in (kmock) holding the chart's worker Deployment."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import typer
from tests.support.kube_api import KubeApiStandIn

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


# -- the Kubernetes placement: an API stand-in holding the chart's worker Deployment ----------------


@dataclass
class KubeFleet:
    """The API stand-in with the chart's worker Deployment in it, and what the chart tells the
    coordinator about it (its pods' environment) and allows it (the Role's rules)."""

    api: KubeApiStandIn
    namespace: str
    deployment: str
    selector: str
    pod_labels: dict[str, str]
    rules: list[dict[str, Any]]
    setup_requests: int  # requests made before the test's own

    def fleet(self, **options: Any) -> Any:
        from meshload.coordinator.k8s_placement import KubernetesFleet

        return KubernetesFleet(
            deployment=self.deployment,
            namespace=self.namespace,
            selector=self.selector,
            api_host=self.api.url,
            **options,
        )

    def replicas(self) -> int:
        return int(self.api.objects()[("deployments", self.namespace, self.deployment)]["spec"]["replicas"])

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of the requests made since the fixture was set up (the coordinator's)."""
        return [
            (str(getattr(method, "value", method)), path) for method, path in self.api.requests()[self.setup_requests :]
        ]

    def scale_patches(self) -> list[str]:
        return [path for method, path in self.requests() if method == "PATCH" and path.endswith("/scale")]

    def refused_by_the_role(self) -> list[str]:
        """The requests the chart's Role would not allow (RBAC's rules, as the API server applies them)."""
        return [f"{method} {path}" for method, path in self.requests() if not _allowed(self.rules, method, path)]


_PATH = re.compile(
    r"^/(?:api|apis/(?P<group>[^/]+))/(?P<version>[^/]+)/namespaces/(?P<namespace>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<subresource>[^/]+))?)?$"
)
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _allowed(rules: list[dict[str, Any]], method: str, path: str) -> bool:
    match = _PATH.match(path)
    if match is None:
        return False  # discovery or cluster-wide: the chart grants none of it
    name = match["name"]
    verb = _VERBS.get(method) or ("get" if name else "list")
    resource = match["plural"] + (f"/{match['subresource']}" if match["subresource"] else "")
    return any(
        (match["group"] or "") in rule["apiGroups"]
        and resource in rule["resources"]
        and verb in rule["verbs"]
        and ("resourceNames" not in rule or name in rule["resourceNames"])
        for rule in rules
    )


@pytest.fixture
def kube_fleet(full_chart: ChartObjects) -> Iterator[KubeFleet]:
    """The chart's worker Deployment (at 1 replica) in a fresh API stand-in that serves its scale."""
    job = next(t for t in full_chart.pod_templates() if t.owner.startswith("Job/"))
    env = {entry["name"]: entry.get("value") for entry in job.spec["containers"][0]["env"]}
    deployment = dict(full_chart.get("Deployment", env["MESHLOAD_K8S_WORKER_DEPLOYMENT"]))
    deployment["metadata"] = {**deployment["metadata"], "namespace": "perf"}
    deployment["spec"] = {**deployment["spec"], "replicas": 1}
    with KubeApiStandIn() as api:
        api.serve_scale()
        api.call(lambda emulator: emulator.objects.__setitem__(
            ("apps/v1/deployments", "perf", deployment["metadata"]["name"]), deployment
        ))  # fmt: skip
        yield KubeFleet(
            api=api,
            namespace="perf",
            deployment=deployment["metadata"]["name"],
            selector=env["MESHLOAD_K8S_WORKER_SELECTOR"],
            pod_labels=dict(deployment["spec"]["template"]["metadata"]["labels"]),
            rules=full_chart.one("Role")["rules"],
            setup_requests=len(api.requests()),
        )
