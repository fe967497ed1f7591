"""The NetworkPolicies let each meshload pod reach exactly what it needs, asked of a policy evaluator
that applies the Kubernetes rules to the rendered objects (tests/k8s/netpol.py)."""

from __future__ import annotations

from .chart_objects import ChartObjects
from .conftest import Render
from .netpol import Endpoint, address, allows, pod

NAMESPACE = "perf"
DNS = pod("kube-system", {"k8s-app": "kube-dns"})


def _pods(chart: ChartObjects) -> dict[str, Endpoint]:
    """One pod of each component, with the labels the chart gives it."""
    return {
        template.labels["app.kubernetes.io/component"]: pod(NAMESPACE, template.labels)
        for template in chart.pod_templates()
    }


def test_redis_answers_only_this_releases_meshload_pods(full_chart: ChartObjects) -> None:
    policies = full_chart.of_kind("NetworkPolicy")
    pods = _pods(full_chart)
    redis = pods["redis"]
    for client in ("worker", "coordinator", "test"):
        assert allows(policies, pods[client], redis, 6379, namespace=NAMESPACE), client
    stranger = pod(NAMESPACE, {"app": "shop"})
    other_release = pod(NAMESPACE, {**pods["worker"].labels, "app.kubernetes.io/instance": "other"})
    same_labels_elsewhere = pod("elsewhere", pods["worker"].labels)
    for intruder in (stranger, other_release, same_labels_elsewhere, address("10.1.2.3")):
        assert not allows(policies, intruder, redis, 6379, namespace=NAMESPACE), intruder
    assert not allows(policies, pods["worker"], redis, 6380, namespace=NAMESPACE)  # only Redis's port
    assert not allows(policies, redis, address("203.0.113.9"), 443, namespace=NAMESPACE)  # Redis calls nobody


def test_workers_reach_only_redis_dns_and_the_targets_of_the_values(full_chart: ChartObjects) -> None:
    policies = full_chart.of_kind("NetworkPolicy")
    pods = _pods(full_chart)
    worker = pods["worker"]
    productpage = pod("bookinfo", {"app": "productpage"})
    reachable = [
        (pods["redis"], 6379, "TCP"),
        (DNS, 53, "UDP"),
        (DNS, 53, "TCP"),
        (address("198.51.100.7"), 8443, "TCP"),  # inside targets[0].cidr
        (productpage, 9080, "TCP"),  # targets[1]: namespace bookinfo, app=productpage
        (pods["test-echo"], 8080, "TCP"),  # the helm test's echo
    ]
    for destination, port, protocol in reachable:
        assert allows(policies, worker, destination, port, protocol, namespace=NAMESPACE), destination
    unreachable = [
        (address("198.51.100.200"), 8443),  # in the block's `except`
        (address("198.51.100.7"), 80),  # a port not listed
        (address("192.0.2.1"), 8443),  # outside every block
        (pod("bookinfo", {"app": "ratings"}), 9080),  # not the labelled pods
        (pod("shop", {"app": "productpage"}), 9080),  # same labels, other namespace
        (address("10.0.0.1"), 443),  # the Kubernetes API
        (pod("kube-system", {"k8s-app": "kube-dns"}), 8080),  # DNS pods only on 53
        (pods["coordinator"], 9555),
    ]
    for destination, port in unreachable:
        assert not allows(policies, worker, destination, port, namespace=NAMESPACE), (destination, port)
    for source in (pods["coordinator"], pod(NAMESPACE, {"app": "shop"}), address("10.9.9.9")):
        assert not allows(policies, source, worker, 8080, namespace=NAMESPACE)  # nothing calls a worker


def test_without_targets_workers_reach_nothing_but_redis_and_dns(default_chart: ChartObjects) -> None:
    policies = default_chart.of_kind("NetworkPolicy")
    pods = _pods(default_chart)
    assert allows(policies, pods["worker"], pods["redis"], 6379, namespace=NAMESPACE)
    assert allows(policies, pods["worker"], DNS, 53, "UDP", namespace=NAMESPACE)
    for destination in (address("8.8.8.8"), address("10.0.0.5"), pod("bookinfo", {"app": "productpage"})):
        assert not allows(policies, pods["worker"], destination, 80, namespace=NAMESPACE)


def test_the_coordinator_reaches_redis_dns_and_the_api_server_and_only_prometheus_reaches_it(
    full_chart: ChartObjects, render: Render
) -> None:
    policies = full_chart.of_kind("NetworkPolicy")
    pods = _pods(full_chart)
    coordinator = pods["coordinator"]
    assert allows(policies, coordinator, pods["redis"], 6379, namespace=NAMESPACE)
    assert allows(policies, coordinator, address("10.0.0.1"), 443, namespace=NAMESPACE)  # apiServer.cidrs
    assert not allows(policies, coordinator, address("10.0.0.2"), 443, namespace=NAMESPACE)
    assert not allows(policies, coordinator, address("198.51.100.7"), 8443, namespace=NAMESPACE)  # sends no load
    prometheus = pod("monitoring", {"app": "prometheus"})
    assert allows(policies, prometheus, coordinator, 9555, namespace=NAMESPACE)  # metricsFrom: any namespace
    assert not allows(policies, prometheus, coordinator, 8080, namespace=NAMESPACE)
    narrowed = render(
        {
            **_with_job(),
            "coordinator": {"metrics": {"enabled": True}},
            "networkPolicy": {
                "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
            },
        }
    )
    narrowed_policies = narrowed.of_kind("NetworkPolicy")
    narrowed_coordinator = _pods(narrowed)["coordinator"]
    assert allows(narrowed_policies, prometheus, narrowed_coordinator, 9464, namespace=NAMESPACE)
    assert not allows(narrowed_policies, pod("shop", {}), narrowed_coordinator, 9464, namespace=NAMESPACE)


def test_an_external_redis_is_reached_at_the_addresses_of_the_values(render: Render) -> None:
    chart = render(
        {
            "redis": {
                "mode": "external",
                "external": {"existingSecret": "my-redis", "egress": [{"cidr": "10.20.0.15/32", "ports": [6380]}]},
            }
        }
    )
    policies = chart.of_kind("NetworkPolicy")
    worker = _pods(chart)["worker"]
    assert not chart.of_kind("StatefulSet")
    assert allows(policies, worker, address("10.20.0.15"), 6380, namespace=NAMESPACE)
    assert not allows(policies, worker, address("10.20.0.16"), 6380, namespace=NAMESPACE)
    assert not allows(policies, worker, address("10.20.0.15"), 6379, namespace=NAMESPACE)


def test_network_policies_can_be_left_out(render: Render) -> None:
    assert not render({"networkPolicy": {"enabled": False}}).of_kind("NetworkPolicy")


def _with_job() -> dict[str, object]:
    return {"job": {"enabled": True, "plan": {"url": "http://x/", "load": {"rate": 1}}}}
