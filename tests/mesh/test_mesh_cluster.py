"""Applying, waiting for and removing functions through the Kubernetes API, against an API server
stand-in (kmock) that speaks the real API to the official client: creates, merge patches, deletes,
Status errors. kmock runs no mesh controller, so where a mesh writes status (Consul's Synced, a
Deployment's rollout) a small thread here writes it, as the controller would; where a mesh writes
none (Istio by default, Service annotations), a probe against a real local HTTP server confirms."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.support.http_servers import refused_port
from tests.support.kube_api import KubeApiStandIn

from meshload.coordinator.mesh import Cluster, HttpProbe, KubernetesMesh, ProbeOutcome
from meshload.errors import ApiRefused, ClusterUnreachable, FunctionNotSupported, NotInForce
from meshload.results.smp import MESH_TYPES

from .conftest import CUSTOM_KINDS

Object = dict[str, Any]
CONSUL = "consul.hashicorp.com/v1alpha1"


def managed(kube_api: KubeApiStandIn) -> set[tuple[str, str]]:
    return {
        (plural, name)
        for (plural, _, name), obj in kube_api.objects().items()
        if obj.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/managed-by") == "meshload"
    }


@contextmanager
def controller(
    cluster: Cluster, kinds: list[tuple[str, str]], status: Callable[[Object], Object | None]
) -> Iterator[None]:
    """A mesh controller stand-in: every 100 ms, patch `status(obj)` onto objects of `kinds`."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.1):
            for api_version, kind in kinds:
                for obj in cluster.list(api_version, kind, "bookinfo"):
                    new = status(obj)
                    if new is not None and obj.get("status") != new:
                        cluster.patch(api_version, kind, obj["metadata"]["name"], "bookinfo", {"status": new})

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def synced(reason_for: Callable[[Object], str] = lambda obj: "") -> Callable[[Object], Object]:
    """consul-k8s's controller: on each change of an entry's spec it syncs the entry and writes its
    Synced condition (no observedGeneration) and `lastSyncedTime`; until then the old status stays."""
    synced_specs: dict[tuple[str, str], str] = {}  # by kind and name: entries of two kinds share names

    def status(obj: Object) -> Object:
        spec = json.dumps(obj.get("spec"), sort_keys=True)
        entry = (obj.get("kind", ""), obj["metadata"]["name"])
        if synced_specs.get(entry) == spec:
            return obj["status"]
        synced_specs[entry] = spec
        reason = reason_for(obj)
        condition = {"type": "Synced", "status": "False" if reason else "True"}
        if reason:
            condition.update({"reason": "ConsulAgentError", "message": reason})
        return {"conditions": [condition], "lastSyncedTime": datetime.now(UTC).isoformat()}

    return status


def accepted(route: Object) -> Object:
    """What Istio's and Linkerd's controllers write on a GAMMA route they accept."""
    parent = {"group": "", "kind": "Service", "name": route["spec"]["parentRefs"][0]["name"]}
    condition = {"type": "Accepted", "status": "True", "reason": "Accepted"}
    return {
        "parents": [{"parentRef": parent, "controllerName": "istio.io/gateway-controller", "conditions": [condition]}]
    }


def test_istio_apply_switch_and_remove_keep_the_cluster_clean(kube_api: KubeApiStandIn, cluster: Cluster) -> None:
    gateway_before = cluster.get("networking.istio.io/v1", "VirtualService", "bookinfo", "bookinfo")
    assert gateway_before is not None
    mesh = KubernetesMesh("istio", cluster=cluster, in_force_timeout_s=2, poll_s=0.05)

    in_force = mesh.apply("retries", {"service": "all", "attempts": "2"})
    assert mesh.current_function() == "retries"
    assert not in_force.fully_confirmed  # Istio writes no status unless asked to: nothing confirms it
    assert "VirtualService bookinfo/reviews" in in_force.unconfirmed
    reviews = cluster.get("networking.istio.io/v1", "VirtualService", "reviews", "bookinfo")
    assert reviews is not None and reviews["spec"]["http"][0]["retries"]["attempts"] == 2
    gateway = cluster.get("networking.istio.io/v1", "VirtualService", "bookinfo", "bookinfo")
    assert gateway is not None and gateway["spec"]["http"][0]["retries"]["attempts"] == 2
    assert "meshload/revert" in gateway["metadata"]["annotations"]
    assert ("peerauthentications", "default") in managed(kube_api)

    with controller(cluster, [("gateway.networking.k8s.io/v1", "HTTPRoute")], accepted):
        in_force = mesh.apply("traffic-split", {"weights": "50,50,0"})  # the reviews VirtualService goes away
    assert "HTTPRoute bookinfo/reviews-split" in in_force.confirmed
    assert ("virtualservices", "reviews") not in managed(kube_api)
    assert ("httproutes", "reviews-split") in managed(kube_api)
    gateway = cluster.get("networking.istio.io/v1", "VirtualService", "bookinfo", "bookinfo")
    assert gateway is not None and gateway["spec"] == gateway_before["spec"]  # not targeted: reverted

    mesh.remove()
    assert managed(kube_api) == set()
    gateway = cluster.get("networking.istio.io/v1", "VirtualService", "bookinfo", "bookinfo")
    assert gateway is not None and gateway["spec"] == gateway_before["spec"]
    assert "meshload/revert" not in (gateway["metadata"].get("annotations") or {})
    assert cluster.get("v1", "Service", "reviews", "bookinfo") is not None  # BookInfo itself stays


def test_linkerd_patches_are_reverted_even_by_a_later_process(kube_api: KubeApiStandIn, cluster: Cluster) -> None:
    mesh = KubernetesMesh("linkerd", cluster=cluster, in_force_timeout_s=5, poll_s=0.05)
    cluster.patch("v1", "Service", "reviews", "bookinfo", {"metadata": {"annotations": {"team": "books"}}})

    def rolled_out(obj: Object) -> Object | None:
        annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
        if "config.linkerd.io/access-log" not in annotations:
            return None
        return {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}

    started = time.monotonic()
    with controller(cluster, [("apps/v1", "Deployment")], rolled_out):
        in_force = mesh.apply("access-log", {"format": "json"})
    assert in_force.fully_confirmed and "Deployment bookinfo/reviews-v3" in in_force.confirmed
    assert time.monotonic() - started >= 0.05
    deployment = cluster.get("apps/v1", "Deployment", "reviews-v3", "bookinfo")
    assert deployment is not None
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"]["config.linkerd.io/access-log"] == "json"

    mesh.apply("retries", {"service": "reviews", "attempts": "3"}, probe=_ok)
    service = cluster.get("v1", "Service", "reviews", "bookinfo")
    assert service is not None
    assert service["metadata"]["annotations"]["retry.linkerd.io/limit"] == "3"
    assert service["metadata"]["annotations"]["team"] == "books"
    deployment = cluster.get("apps/v1", "Deployment", "reviews-v3", "bookinfo")
    assert deployment is not None
    template = deployment["spec"]["template"]
    assert "config.linkerd.io/access-log" not in template["metadata"].get("annotations", {})

    KubernetesMesh("linkerd", cluster=cluster).remove()  # another process, after this one was lost
    service = cluster.get("v1", "Service", "reviews", "bookinfo")
    assert service is not None and service["metadata"]["annotations"] == {"team": "books"}


def _ok() -> ProbeOutcome:
    return ProbeOutcome(True, "checked")


def test_consul_is_in_force_when_synced_and_says_why_it_is_not(cluster: Cluster) -> None:
    mesh = KubernetesMesh("consul", cluster=cluster, in_force_timeout_s=1.0, poll_s=0.05)
    kinds = [(CONSUL, kind) for kind in ("ServiceDefaults", "ServiceIntentions", "ServiceRouter", "ProxyDefaults")]
    enterprise = "Rate limiting is a Consul Enterprise feature"
    community_edition = {"refuses_rate_limits": False}
    # One controller's memory throughout, as in a cluster: an entry it synced already, spec unchanged,
    # keeps its status (a fresh memory would rewrite every status at its first pass, and one written
    # for the old spec just after meshload's change would pass for the change's).
    consul = synced(
        lambda obj: enterprise if community_edition["refuses_rate_limits"] and "rateLimits" in obj["spec"] else ""
    )
    with controller(cluster, kinds, consul):
        in_force = mesh.apply("timeout", {"service": "reviews"})
    assert in_force.fully_confirmed and "ServiceRouter bookinfo/reviews" in in_force.confirmed

    community_edition["refuses_rate_limits"] = True
    with controller(cluster, kinds, consul), pytest.raises(NotInForce) as refused:
        mesh.apply("rate-limit")
    message = str(refused.value)
    assert message.startswith("consul rate-limit not in force after 1 s: ServiceDefaults bookinfo/productpage")
    assert f"Synced=False: ConsulAgentError: {enterprise}" in message

    with pytest.raises(FunctionNotSupported, match="consul mtls: in baseline"):
        mesh.apply("mtls")


def test_access_log_creates_consul_proxy_defaults_when_missing_and_deletes_it_after(
    kube_api: KubeApiStandIn, cluster: Cluster
) -> None:
    mesh = KubernetesMesh("consul", cluster=cluster, in_force_timeout_s=2, poll_s=0.05)
    with controller(
        cluster, [(CONSUL, "ProxyDefaults"), (CONSUL, "ServiceDefaults"), (CONSUL, "ServiceIntentions")], synced()
    ):
        mesh.apply("access-log")
    proxy_defaults = cluster.get(CONSUL, "ProxyDefaults", "global", "bookinfo")
    assert proxy_defaults is not None and proxy_defaults["spec"]["accessLogs"]["enabled"] is True
    mesh.remove()
    assert cluster.get(CONSUL, "ProxyDefaults", "global", "bookinfo") is None
    assert managed(kube_api) == set()


def test_a_patched_consul_entry_is_not_in_force_on_the_status_it_had_before(cluster: Cluster) -> None:
    """The mesh's own ProxyDefaults, synced long ago: access logging patches it, and its old Synced
    condition (consul-k8s writes no observedGeneration) must not pass for the change's."""
    cluster.apply(
        {"apiVersion": CONSUL, "kind": "ProxyDefaults", "metadata": {"name": "global", "namespace": "bookinfo"}}
    )
    long_ago = {"conditions": [{"type": "Synced", "status": "True"}], "lastSyncedTime": "2026-01-01T00:00:00+00:00"}
    cluster.patch(CONSUL, "ProxyDefaults", "global", "bookinfo", {"status": long_ago})
    mesh = KubernetesMesh("consul", cluster=cluster, in_force_timeout_s=1.0, poll_s=0.05)
    others = [(CONSUL, "ServiceDefaults"), (CONSUL, "ServiceIntentions")]
    with controller(cluster, others, synced()), pytest.raises(NotInForce) as refused:
        mesh.apply("access-log")
    assert str(refused.value).endswith("ProxyDefaults bookinfo/global: status from before the change")


class _FlippingServer(http.server.ThreadingHTTPServer):
    """Answers 200 until `flip_after` requests were served, then 500 (a fault coming into force)."""

    daemon_threads = True

    def __init__(self, flip_after: int) -> None:
        self.served = 0
        self.flip_after = flip_after
        super().__init__(("127.0.0.1", 0), _FlippingHandler)


class _FlippingHandler(http.server.BaseHTTPRequestHandler):
    server: _FlippingServer

    def do_GET(self) -> None:
        self.server.served += 1
        status = 500 if self.server.served > self.server.flip_after else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def flipping_server(flip_after: int) -> Iterator[_FlippingServer]:
    server = _FlippingServer(flip_after)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_probe_confirms_what_no_status_shows_and_times_out_clearly(cluster: Cluster) -> None:
    with flipping_server(flip_after=3) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/productpage"
        probe = HttpProbe(url, expect_status=500)
        mesh = KubernetesMesh("istio", cluster=cluster, probe=probe, in_force_timeout_s=5, poll_s=0.05)
        in_force = mesh.apply("fault-abort", {"end_user": ""})
        assert in_force.fully_confirmed
        assert in_force.confirmed[-1] == f"probe: GET {url} answered 500"
        assert server.served == 4  # three 200s while "not yet in force", then the 500

    with flipping_server(flip_after=10**6) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/productpage"
        mesh = KubernetesMesh("istio", cluster=cluster, in_force_timeout_s=0.3, poll_s=0.05)
        with pytest.raises(
            NotInForce,
            match=r"^istio fault-abort not in force after 0.3 s: probe: GET .* "
            r"status 200, expected 500$",
        ):
            mesh.apply("fault-abort", {"end_user": ""}, probe=HttpProbe(url, expect_status=500))
        mesh.remove()


def test_an_rbac_refusal_names_the_verb_and_the_resource(kube_api: KubeApiStandIn, cluster: Cluster) -> None:
    server_says = (
        'destinationrules.networking.istio.io is forbidden: User "system:serviceaccount:load:meshload" '
        'cannot create resource "destinationrules" in API group "networking.istio.io" in the namespace '
        '"bookinfo"'
    )
    kube_api.refuse("post", "networking.istio.io", "v1", "destinationrules", 403, server_says)
    mesh = KubernetesMesh("istio", cluster=cluster, in_force_timeout_s=1)
    with pytest.raises(ApiRefused) as refused:
        mesh.apply("sidecar")
    message = str(refused.value)
    assert message.startswith(
        "the Kubernetes API refused to create DestinationRule bookinfo/productpage (403 Forbidden)"
    )
    assert "needs RBAC permission to create destinationrules.networking.istio.io in namespace bookinfo" in message
    assert message.endswith(server_says) and "\n" not in message


def test_a_mesh_whose_crds_are_missing_is_named(tmp_path: Path) -> None:
    with KubeApiStandIn([k for k in CUSTOM_KINDS if not k[0].startswith("consul.")]) as api:
        cluster = Cluster.connect(host=api.url, discovery_cache=tmp_path / "d.json")
        with pytest.raises(
            ApiRefused, match=r"serves no ServiceDefaults in consul.hashicorp.com/v1alpha1: is the mesh"
        ):
            KubernetesMesh("consul", cluster=cluster).apply("sidecar")


def test_no_cluster_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = refused_port()
    cluster = Cluster.connect(host=f"http://127.0.0.1:{port}", discovery_cache=tmp_path / "d.json")
    with pytest.raises(ClusterUnreachable, match=rf"^no Kubernetes API answered at http://127.0.0.1:{port} "):
        cluster.list("v1", "Pod", "bookinfo")
    with pytest.raises(ClusterUnreachable, match=r"--kubeconfig .*missing: no such file"):
        Cluster.connect(kubeconfig=tmp_path / "missing")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none-here"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterUnreachable, match=r"^no Kubernetes configuration: no kubeconfig at .*none-here"):
        Cluster.connect()


def test_a_kubeconfig_reaches_the_api_server(kube_api: KubeApiStandIn, cluster: Cluster, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: bench\n"
        f"clusters:\n- name: stand-in\n  cluster:\n    server: {kube_api.url}\n"
        "users:\n- name: meshload\n  user:\n    token: not-checked\n"
        "contexts:\n- name: bench\n  context:\n    cluster: stand-in\n    user: meshload\n"
    )
    via_config = Cluster.connect(kubeconfig=kubeconfig, discovery_cache=tmp_path / "d.json")
    names = {obj["metadata"]["name"] for obj in via_config.list("apps/v1", "Deployment", "bookinfo")}
    assert names == {"productpage-v1", "details-v1", "reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1"}


def _workload(kind: str, name: str, namespace: str, container: str, image: str) -> Object:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": container, "image": image}]},
            },
        },
    }


def _pod(name: str, sidecar: str, image: str, *, native: bool = False) -> Object:
    app = {"name": "reviews", "image": "docker.io/istio/examples-bookinfo-reviews-v1:1.20.1"}
    proxy = {"name": sidecar, "image": image}
    spec = {"containers": [app], "initContainers": [proxy]} if native else {"containers": [app, proxy]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "bookinfo"}, "spec": spec}


def test_mesh_facts_come_from_the_cluster(cluster: Cluster) -> None:
    cluster.apply(_workload("Deployment", "istiod", "istio-system", "discovery", "docker.io/istio/pilot:1.24.2"))
    cluster.apply(_pod("reviews-v1-abc", "istio-proxy", "docker.io/istio/proxyv2:1.24.2"))
    istio = KubernetesMesh("istio", cluster=cluster, in_force_timeout_s=1)
    facts = istio.facts()
    assert (facts.mesh_build, facts.proxy_build, facts.mtls_enabled) == ("1.24.2", "1.24.2", True)
    assert "Istio's default" in facts.sources["mtls_enabled"]  # no PeerAuthentication: PERMISSIVE + auto-mTLS
    istio.apply("sidecar")
    sampling = istio.start_sampling()
    usage = sampling.stop()
    assert (usage.mesh, usage.function, usage.mtls_enabled) == ("istio", "sidecar", False)
    assert (usage.mesh_version, usage.proxy_version) == ("1.24.2", "1.24.2")
    assert MESH_TYPES[usage.mesh] == 3
    istio.apply("mtls")
    assert istio.facts().mtls_enabled and "STRICT" in istio.facts().sources["mtls_enabled"]
    istio.remove()

    cluster.apply(
        _workload(
            "Deployment", "linkerd-destination", "linkerd", "destination", "cr.l5d.io/linkerd/controller:edge-25.4.4"
        )
    )
    cluster.apply(_pod("details-v1-xyz", "linkerd-proxy", "cr.l5d.io/linkerd/proxy:edge-25.4.4", native=True))
    linkerd = KubernetesMesh("linkerd", cluster=cluster).facts()
    assert (linkerd.mesh_build, linkerd.proxy_build, linkerd.mtls_enabled) == ("edge-25.4.4", "edge-25.4.4", True)

    cluster.apply(_workload("StatefulSet", "consul-server", "consul", "consul", "hashicorp/consul:1.21.0"))
    cluster.apply(_pod("ratings-v1-q", "consul-dataplane", "hashicorp/consul-dataplane:1.7.0"))
    consul = KubernetesMesh("consul", cluster=cluster).facts()
    assert (consul.mesh_build, consul.proxy_build, consul.mtls_enabled) == ("1.21.0", "1.7.0", True)
    assert "StatefulSet consul/consul-server" in consul.sources["mesh_build"]
