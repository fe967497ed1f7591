"""Fixtures of the mesh tests: a Kubernetes API stand-in (kmock) serving every kind the adapters use,
with BookInfo deployed into it from k8s/bookinfo, and a Cluster connected to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.kube_api import KubeApiStandIn  # the root conftest puts the repository on sys.path

from meshload.coordinator.mesh import Cluster

REPO = Path(__file__).resolve().parents[2]
BOOKINFO = REPO / "k8s" / "bookinfo"

# (apiVersion, kind, plural) of the custom resources the adapters read or write.
CUSTOM_KINDS = (
    ("networking.istio.io/v1", "VirtualService", "virtualservices"),
    ("networking.istio.io/v1", "DestinationRule", "destinationrules"),
    ("networking.istio.io/v1", "Gateway", "gateways"),
    ("networking.istio.io/v1alpha3", "EnvoyFilter", "envoyfilters"),
    ("security.istio.io/v1", "PeerAuthentication", "peerauthentications"),
    ("telemetry.istio.io/v1", "Telemetry", "telemetries"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    ("policy.linkerd.io/v1beta3", "Server", "servers"),
    ("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication", "meshtlsauthentications"),
    ("policy.linkerd.io/v1alpha1", "AuthorizationPolicy", "authorizationpolicies"),
    ("policy.linkerd.io/v1alpha1", "HTTPLocalRateLimitPolicy", "httplocalratelimitpolicies"),
    ("consul.hashicorp.com/v1alpha1", "ServiceDefaults", "servicedefaults"),
    ("consul.hashicorp.com/v1alpha1", "ServiceIntentions", "serviceintentions"),
    ("consul.hashicorp.com/v1alpha1", "ServiceRouter", "servicerouters"),
    ("consul.hashicorp.com/v1alpha1", "ServiceResolver", "serviceresolvers"),
    ("consul.hashicorp.com/v1alpha1", "ServiceSplitter", "servicesplitters"),
    ("consul.hashicorp.com/v1alpha1", "ProxyDefaults", "proxydefaults"),
)


def bookinfo_objects(*files: str, namespace: str = "bookinfo") -> list[dict[str, Any]]:
    objects = []
    for name in files:
        for document in yaml.safe_load_all((BOOKINFO / name).read_text()):
            if document:
                document.setdefault("metadata", {}).setdefault("namespace", namespace)
                objects.append(document)
    return objects


@pytest.fixture
def kube_api() -> Iterator[KubeApiStandIn]:
    with KubeApiStandIn(CUSTOM_KINDS) as api:
        yield api


@pytest.fixture
def cluster(kube_api: KubeApiStandIn, tmp_path: Path) -> Cluster:
    """A Cluster on the stand-in with BookInfo deployed (as `kubectl apply -f k8s/bookinfo/...`)."""
    cluster = Cluster.connect(host=kube_api.url, discovery_cache=tmp_path / "discovery.json", request_timeout_s=5)
    for obj in bookinfo_objects("bookinfo.yaml", "bookinfo-versions.yaml", "istio/bookinfo-gateway.yaml"):
        cluster.apply(obj, current=None)  # a fresh server: nothing to read first
    return cluster
