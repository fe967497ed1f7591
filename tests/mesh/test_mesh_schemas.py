"""Every (mesh, function) rendering, and every file of k8s/bookinfo, against the published schemas:
Istio's and Gateway API's CRD schemas (npm kubernetes-models packages, installed at test time) and the
Kubernetes schemas (kubernetes-validate, strict) for built-in kinds. A merge patch is checked as the
object it produces on BookInfo's own manifest. Linkerd's and Consul's CRDs come in no package reachable
here (see tests/mesh/schemas.py): those objects are counted, not validated."""

from __future__ import annotations

import copy
from typing import Any

from meshload.coordinator.mesh import FUNCTIONS, MESHES, Rendering, dialect_named
from meshload.coordinator.mesh.catalogue import deployments
from meshload.coordinator.mesh.istio import GATEWAY_MATCHES
from meshload.coordinator.mesh.manifests import merge

from .conftest import bookinfo_objects
from .schemas import NO_SCHEMA, UNVALIDATED_GROUPS, is_builtin, validate_builtin, validate_custom

BOOKINFO_FILES = ("bookinfo.yaml", "bookinfo-versions.yaml", "bookinfo-gateway.yaml", "istio/bookinfo-gateway.yaml")
NAMESPACE_FILES = ("namespaces/istio.yaml", "namespaces/linkerd.yaml", "namespaces/consul.yaml", "namespaces/none.yaml")


def _patched_objects(rendering: Rendering) -> list[dict[str, Any]]:
    """Each patch applied to the object it patches (BookInfo's manifest; a created-if-missing patch alone)."""
    existing = {(o["kind"], o["metadata"]["name"]): o for o in bookinfo_objects(*BOOKINFO_FILES, namespace="shop")}
    objects = []
    for patch in rendering.patches:
        target = existing.get((patch.kind, patch.name))
        if target is None:
            assert patch.create_if_missing, f"{patch.kind} {patch.name} is not in k8s/bookinfo"
            objects.append(patch.as_object())
        else:
            objects.append(merge(copy.deepcopy(target), patch.patch))
    return objects


def _all_renderings() -> list[Rendering]:
    renderings = []
    for mesh in MESHES:
        for function in FUNCTIONS:
            answer = dialect_named(mesh).render(function, None, "shop")
            if isinstance(answer, Rendering):
                renderings.append(answer)
    # parameter variants that render other fields
    variants = [
        ("istio", "fault-abort", {"service": "productpage", "end_user": ""}),
        ("istio", "retries", {"per_try_timeout_ms": "200"}),
        ("consul", "access-log", {"format": "json"}),
        ("linkerd", "access-log", {"format": "json"}),
    ]
    for mesh, function, params in variants:
        answer = dialect_named(mesh).render(function, params, "shop")
        assert isinstance(answer, Rendering)
        renderings.append(answer)
    return renderings


def test_every_rendering_validates_against_the_published_schemas() -> None:
    renderings = _all_renderings()
    custom: list[tuple[str, dict[str, Any]]] = []
    builtin_checked = 0
    unvalidated: dict[str, int] = {}
    for rendering in renderings:
        label = f"{rendering.mesh} {rendering.function}"
        for obj in [m.body for m in rendering.manifests] + _patched_objects(rendering):
            group = obj["apiVersion"].rpartition("/")[0]
            if is_builtin(obj):
                assert validate_builtin(obj) is None, (label, validate_builtin(obj))
                builtin_checked += 1
            elif group in UNVALIDATED_GROUPS:
                unvalidated[group] = unvalidated.get(group, 0) + 1
            else:
                custom.append((label, obj))
    results = validate_custom([obj for _, obj in custom])
    failures = [
        (label, obj["kind"], obj["metadata"]["name"], error)
        for (label, obj), error in zip(custom, results, strict=True)
        if error
    ]
    assert failures == []
    kinds = {obj["kind"] for _, obj in custom}
    assert kinds == {"PeerAuthentication", "DestinationRule", "VirtualService", "EnvoyFilter", "Telemetry", "HTTPRoute"}
    assert builtin_checked >= 10  # Linkerd's Service and Deployment patches
    assert set(unvalidated) == set(UNVALIDATED_GROUPS)


def test_the_crd_validators_reject_what_the_crds_reject() -> None:
    """Without this, a validator that accepts anything would make the test above pass."""
    rendering = dialect_named("istio").render("retries", {"service": "reviews"}, "shop")
    assert isinstance(rendering, Rendering)
    service = next(m.body for m in rendering.manifests if m.kind == "VirtualService" and m.name == "reviews")
    wrong_type = copy.deepcopy(service)
    wrong_type["spec"]["http"][0]["retries"]["attempts"] = "three"
    policy = next(m.body for m in rendering.manifests if m.kind == "PeerAuthentication")
    wrong_enum = copy.deepcopy(policy)
    wrong_enum["spec"]["mtls"]["mode"] = "SOMETIMES"
    route = dialect_named("linkerd").render("traffic-split", None, "shop")
    assert isinstance(route, Rendering)
    no_parent_name = copy.deepcopy(route.manifests[0].body)
    del no_parent_name["spec"]["parentRefs"][0]["name"]
    unknown = {"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server", "metadata": {"name": "x"}, "spec": {}}
    results = validate_custom([service, wrong_type, wrong_enum, no_parent_name, unknown])
    assert results[0] is None
    assert results[1] is not None and "attempts" in results[1]
    assert results[2] is not None and "mode" in results[2]
    assert results[3] is not None and "name" in results[3]
    assert results[4] is not None and results[4].startswith(NO_SCHEMA)
    assert (
        validate_builtin(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "x"},
                "spec": {"ports": [{"port": 80, "prot": "TCP"}]},
            }
        )
        is not None
    )


def test_bookinfo_manifests_validate_and_match_the_adapters_topology() -> None:
    objects = bookinfo_objects(*BOOKINFO_FILES) + bookinfo_objects(*NAMESPACE_FILES)
    builtin = [obj for obj in objects if is_builtin(obj)]
    for obj in builtin:
        assert validate_builtin(obj) is None, validate_builtin(obj)
    custom = [obj for obj in objects if not is_builtin(obj)]
    assert validate_custom(custom) == [None] * len(custom)

    by_kind: dict[str, list[str]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj["metadata"]["name"])
    assert sorted(by_kind["Deployment"]) == sorted(deployments())
    assert sorted(by_kind["Service"]) == sorted(
        ["productpage", "details", "reviews", "ratings", "reviews-v1", "reviews-v2", "reviews-v3"]
    )
    for obj in objects:
        if obj["kind"] == "Deployment":
            template = obj["spec"]["template"]
            version = template["metadata"]["labels"]["version"]
            assert template["metadata"]["annotations"]["consul.hashicorp.com/service-meta-version"] == version
            assert template["spec"]["serviceAccountName"] == f"bookinfo-{template['metadata']['labels']['app']}"
    # the Istio gateway route the adapter patches is the one k8s/bookinfo deploys
    (gateway_route,) = [o for o in objects if o["kind"] == "VirtualService" and o["metadata"]["name"] == "bookinfo"]
    assert gateway_route["spec"]["http"][0]["match"] == list(GATEWAY_MATCHES)
    assert gateway_route["spec"]["http"][0]["retries"] == {"attempts": 0}
    namespaces = {o["metadata"]["name"]: o["metadata"] for o in objects if o["kind"] == "Namespace"}
    assert set(namespaces) == {"bookinfo", "bookinfo-plain"}
