"""Topologies: where the proxies stand, switching between them on a running testbed without touching
the applications, and refusing a function that has no meaning in a topology."""

from __future__ import annotations

import json

import psutil
import pytest

from meshload.testbed import PROFILES, TestbedFailure
from meshload.testbed.processes import MARK_ENV
from meshload.testbed.topology import ALL_INSTANCES, NODES, Ports, instances_on

from .client import fetch

REVIEWS_API = "/api/v1/products/0/reviews"


def _haproxies(mark: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "environ"]):
        if process.info["name"] == "haproxy" and (process.info["environ"] or {}).get(MARK_ENV) == mark:
            found.append(process)
    return found


def _listening(pid: int) -> set[int]:
    return {c.laddr.port for c in psutil.Process(pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN}


def _upstream_ports(port: int) -> dict[str, list[int]]:
    info = json.loads(fetch(f"http://127.0.0.1:{port}/_testbed/info").body)
    return {service: [p for _, p in up["addresses"]] for service, up in info["upstreams"].items()}


def test_switching_topology_moves_only_the_proxies(testbed):
    state = testbed.folder.load()
    ports = Ports.from_json(state["ports"])
    entry = testbed.ingress_url
    apps = {p["name"]: p["pid"] for p in testbed.status()["processes"] if p["kind"] == "app"}
    assert len(apps) == len(ALL_INSTANCES) == 9
    testbed.apply("mtls")  # a function in force moves with the proxies

    testbed.set_topology("per-node")
    status = testbed.status()
    assert (status["topology"], status["function"]) == ("per-node", "mtls")
    proxies = {p["name"]: p for p in status["processes"] if p["kind"] not in ("app", "exporter")}
    assert set(proxies) == {"node-a-proxy", "node-b-proxy", "ingress-gateway"}
    assert len(_haproxies(state["mark"])) == 3  # the nine sidecars are gone
    for node in NODES:
        proxy = proxies[f"{node}-proxy"]
        inbound = {ports.instances[i.name].inbound for i in instances_on(node)}
        assert _listening(proxy["pid"]) == {*inbound, ports.nodes[node]}
        assert set(proxy["ports"].values()) == {*inbound, ports.nodes[node]}
    # every application on a node calls out through its node's proxy
    assert _upstream_ports(ports.instances["productpage-v1"].app) == {
        service: [ports.nodes["node-a"]] for service in ("details", "reviews", "ratings")
    }
    assert _upstream_ports(ports.instances["reviews-v2"].app) == {"ratings": [ports.nodes["node-b"]]}
    assert fetch(f"{entry}/productpage").status == 200

    with pytest.raises(TestbedFailure, match=r"^mtls does not apply in the ingress-only topology: services call"):
        testbed.set_topology("ingress-only")  # refused before anything changes
    assert (testbed.current_topology(), testbed.current_function()) == ("per-node", "mtls")

    testbed.set_topology("ingress-only", "sidecar")
    status = testbed.status()
    assert [p["name"] for p in status["processes"] if p["kind"] not in ("app", "exporter")] == ["ingress-gateway"]
    assert len(_haproxies(state["mark"])) == 1
    # productpage calls the instances itself, taking turns as a Kubernetes Service would
    assert _upstream_ports(ports.instances["productpage-v1"].app)["reviews"] == [
        ports.instances[f"reviews-{v}"].app for v in ("v1", "v2", "v3")
    ]
    pods = {fetch(f"{entry}{REVIEWS_API}").json()["podname"].split("-")[1] for _ in range(6)}
    assert pods == {"v1", "v2", "v3"}
    with pytest.raises(TestbedFailure, match=r"^timeout on reviews does not apply in the ingress-only .* productpage"):
        testbed.apply("timeout")
    testbed.apply("timeout", {"service": "productpage"})
    assert testbed.proxy_of("productpage-v1") is None

    testbed.set_topology("sidecar", "sidecar")
    assert len(_haproxies(state["mark"])) == 10 and testbed.proxy_of("reviews-v2") == "reviews-v2-sidecar"
    assert fetch(f"{entry}/productpage").status == 200 and testbed.ingress_url == entry
    # the applications were never restarted
    assert {p["name"]: p["pid"] for p in testbed.status()["processes"] if p["kind"] == "app"} == apps
    with pytest.raises(TestbedFailure, match=r"unknown topology 'mesh'; choose one of sidecar, per-node, ingress-only"):
        testbed.set_topology("mesh")


def test_every_profile_says_where_it_applies():
    not_everywhere = {name: profile.notes() for name, profile in PROFILES.items() if profile.notes()}
    assert set(not_everywhere) == {
        "mtls",
        "retries",
        "timeout",
        "circuit-breaker",
        "rate-limit",
        "fault-delay",
        "fault-abort",
        "lb-round-robin",
        "lb-least-request",
        "lb-random",
        "traffic-split",
    }
    assert all(set(notes) == {"ingress-only"} for notes in not_everywhere.values())
    assert PROFILES["mtls"].topologies == ("sidecar", "per-node")
    assert PROFILES["grpc-l4"].topologies == ("sidecar", "per-node", "ingress-only")
    assert "service=productpage only" in PROFILES["timeout"].notes()["ingress-only"]
