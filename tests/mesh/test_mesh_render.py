"""What each mesh renders for each function: the fields that carry the function, with the testbed's
parameters (same names, same units), asserted field by field (no golden files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from meshload.coordinator.mesh import FUNCTIONS, MESHES, Rendering, SupportLevel, Unsupported, dialect_named
from meshload.errors import UsageError


def render(mesh: str, function: str, **params: str) -> Rendering:
    rendering = dialect_named(mesh).render(function, params, "shop")
    assert isinstance(rendering, Rendering), rendering
    return rendering


def body(rendering: Rendering, kind: str, name: str) -> dict[str, Any]:
    found = [m.body for m in rendering.manifests if m.kind == kind and m.name == name]
    assert len(found) == 1, f"{kind} {name} in {[(m.kind, m.name) for m in rendering.manifests]}"
    return found[0]


def patch(rendering: Rendering, kind: str, name: str) -> dict[str, Any]:
    found = [p.patch for p in rendering.patches if p.kind == kind and p.name == name]
    assert len(found) == 1, f"patch on {kind} {name} in {[(p.kind, p.name) for p in rendering.patches]}"
    return found[0]


@pytest.mark.parametrize("mesh", MESHES)
def test_every_function_renders_or_says_why_not_in_one_line(mesh: str) -> None:
    for function in FUNCTIONS:
        answer = dialect_named(mesh).render(function, None, "shop")
        if isinstance(answer, Unsupported):
            assert answer.level in (SupportLevel.NOT_SUPPORTED, SupportLevel.IN_BASELINE)
            assert answer.reason and "\n" not in str(answer), answer
            continue
        for obj in answer.objects():
            assert obj["metadata"]["namespace"] == "shop", (function, obj)
        for manifest in answer.manifests:
            assert manifest.body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshload"
            assert manifest.body["metadata"]["annotations"]["meshload/function"] == function
        documents = [d for d in yaml.safe_load_all(answer.to_yaml()) if d]
        assert len(documents) == len(answer.manifests) + len(answer.patches)


def test_istio_baseline_is_plaintext_round_robin_without_retries() -> None:
    rendering = render("istio", "sidecar")
    assert body(rendering, "PeerAuthentication", "default")["spec"] == {"mtls": {"mode": "DISABLE"}}
    for service in ("productpage", "details", "reviews", "ratings"):
        policy = body(rendering, "DestinationRule", service)["spec"]["trafficPolicy"]
        assert policy == {"tls": {"mode": "DISABLE"}, "loadBalancer": {"simple": "ROUND_ROBIN"}}
        routes = body(rendering, "VirtualService", service)["spec"]["http"]
        assert [route["retries"] for route in routes] == [{"attempts": 0}]
    assert rendering.patches == ()  # the ingress route of k8s/bookinfo already has attempts 0
    assert not dialect_named("istio").baseline.mtls_encrypted


def test_istio_mtls_is_strict_with_istio_mutual_and_refuses_a_tls13_floor() -> None:
    rendering = render("istio", "mtls")
    assert body(rendering, "PeerAuthentication", "default")["spec"]["mtls"]["mode"] == "STRICT"
    assert body(rendering, "DestinationRule", "ratings")["spec"]["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
    answer = dialect_named("istio").render("mtls", {"min_tls_version": "TLSv1.3"})
    assert isinstance(answer, Unsupported) and "minProtocolVersion" in answer.reason


def test_istio_retries_carry_attempts_retry_on_and_per_try_timeout() -> None:
    rendering = render(
        "istio",
        "retries",
        service="reviews",
        attempts="4",
        per_try_timeout_ms="250",
        retry_on="conn-failure,response-timeout,503",
    )
    retries = body(rendering, "VirtualService", "reviews")["spec"]["http"][0]["retries"]
    assert retries == {"attempts": 4, "retryOn": "connect-failure,reset,503", "perTryTimeout": "250ms"}
    assert body(rendering, "VirtualService", "details")["spec"]["http"][0]["retries"] == {"attempts": 0}


def test_istio_functions_aimed_at_productpage_patch_the_gateway_route() -> None:
    rendering = render("istio", "timeout", service="productpage", timeout_ms="750")
    routes = patch(rendering, "VirtualService", "bookinfo")["spec"]["http"]
    assert len(routes) == 1 and routes[0]["timeout"] == "750ms" and routes[0]["retries"] == {"attempts": 0}
    assert routes[0]["match"][0]["uri"] == {"exact": "/productpage"}
    assert "timeout" not in body(rendering, "VirtualService", "productpage")["spec"]["http"][0]


def test_istio_faults_for_one_user_get_their_own_route_first() -> None:
    rendering = render("istio", "fault-delay", delay_ms="7000", percent="50")
    routes = body(rendering, "VirtualService", "ratings")["spec"]["http"]
    assert routes[0]["match"] == [{"headers": {"end-user": {"exact": "jason"}}}]
    assert routes[0]["fault"] == {"delay": {"fixedDelay": "7000ms", "percentage": {"value": 50.0}}}
    assert "fault" not in routes[1] and "match" not in routes[1]
    everyone = render("istio", "fault-abort", status="503", end_user="")
    (route,) = body(everyone, "VirtualService", "ratings")["spec"]["http"]
    assert route["fault"] == {"abort": {"httpStatus": 503, "percentage": {"value": 100.0}}}


def test_istio_circuit_breaker_rate_limit_lb_and_access_log_fields() -> None:
    breaker = render(
        "istio", "circuit-breaker", max_connections="8", max_pending="2", consecutive_errors="3", ejection_s="0.5"
    )
    policy = body(breaker, "DestinationRule", "reviews")["spec"]["trafficPolicy"]
    assert policy["connectionPool"] == {"tcp": {"maxConnections": 8}, "http": {"http1MaxPendingRequests": 2}}
    assert policy["outlierDetection"] == {
        "consecutive5xxErrors": 3,
        "interval": "1s",
        "baseEjectionTime": "500ms",
        "maxEjectionPercent": 100,
    }
    assert isinstance(dialect_named("istio").render("circuit-breaker", {"max_pending": "0"}), Unsupported)

    limited = render("istio", "rate-limit", limit_rps="40")
    rate_filter = body(limited, "EnvoyFilter", "productpage-rate-limit")["spec"]
    assert rate_filter["workloadSelector"] == {"labels": {"app": "productpage"}}
    value = rate_filter["configPatches"][0]["patch"]["value"]["typed_config"]["value"]
    assert value["token_bucket"] == {"max_tokens": 40, "tokens_per_fill": 40, "fill_interval": "1s"}

    balanced = render("istio", "lb-least-request", service="ratings")
    assert body(balanced, "DestinationRule", "ratings")["spec"]["trafficPolicy"]["loadBalancer"] == {
        "simple": "LEAST_REQUEST"
    }
    assert (
        body(balanced, "DestinationRule", "reviews")["spec"]["trafficPolicy"]["loadBalancer"]["simple"] == "ROUND_ROBIN"
    )
    logged = render("istio", "access-log")
    assert body(logged, "Telemetry", "access-log")["spec"] == {"accessLogging": [{"providers": [{"name": "envoy"}]}]}


@pytest.mark.parametrize("mesh", ["istio", "linkerd"])
def test_traffic_split_is_a_gamma_httproute_on_the_service(mesh: str) -> None:
    rendering = render(mesh, "traffic-split", weights="70,20,10")
    route = body(rendering, "HTTPRoute", "reviews-split")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}]
    backends = route["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in backends] == [("reviews-v1", 70), ("reviews-v2", 20), ("reviews-v3", 10)]
    if mesh == "istio":  # Istio does not merge a VirtualService and an HTTPRoute for one host
        assert not [m for m in rendering.manifests if m.kind == "VirtualService" and m.name == "reviews"]


def test_linkerd_baseline_contains_mtls_and_ewma_and_renders_nothing() -> None:
    rendering = render("linkerd", "sidecar")
    assert rendering.manifests == () and rendering.patches == ()
    baseline = dialect_named("linkerd").baseline
    assert baseline.mtls_encrypted and "EWMA" in baseline.contains["load-balancing"]


def test_linkerd_retries_timeouts_and_failure_accrual_are_service_annotations() -> None:
    retries = render("linkerd", "retries", service="ratings", attempts="2", per_try_timeout_ms="300")
    annotations = patch(retries, "Service", "ratings")["metadata"]["annotations"]
    assert annotations == {
        "retry.linkerd.io/http": "502,503,504",
        "retry.linkerd.io/limit": "2",
        "retry.linkerd.io/timeout": "300ms",
    }
    assert any("status code only" in note for note in retries.notes)
    no_codes = dialect_named("linkerd").render("retries", {"retry_on": "conn-failure"})
    assert isinstance(no_codes, Unsupported) and "status only" in no_codes.reason

    timeout = render("linkerd", "timeout", timeout_ms="500")
    assert patch(timeout, "Service", "reviews")["metadata"]["annotations"] == {"timeout.linkerd.io/request": "500ms"}

    breaker = render("linkerd", "circuit-breaker", consecutive_errors="4", ejection_s="10")
    accrual = patch(breaker, "Service", "reviews")["metadata"]["annotations"]
    assert accrual["balancer.linkerd.io/failure-accrual"] == "consecutive"
    assert accrual["balancer.linkerd.io/failure-accrual-consecutive-max-failures"] == "4"
    assert accrual["balancer.linkerd.io/failure-accrual-consecutive-min-penalty"] == "10s"
    assert breaker.ignored == ("max_connections", "max_pending")
    assert dialect_named("linkerd").support("circuit-breaker").level is SupportLevel.PARTIAL


def test_linkerd_mtls_requires_identity_and_rate_limit_targets_a_server() -> None:
    rendering = render("linkerd", "mtls")
    assert body(rendering, "MeshTLSAuthentication", "any-meshed")["spec"] == {"identities": ["*"]}
    server = body(rendering, "Server", "reviews-http")["spec"]
    assert server["podSelector"] == {"matchLabels": {"app": "reviews"}} and server["port"] == 9080
    policy = body(rendering, "AuthorizationPolicy", "reviews-mtls-only")["spec"]
    assert policy["targetRef"]["name"] == "reviews-http"
    assert policy["requiredAuthenticationRefs"][0]["kind"] == "MeshTLSAuthentication"

    limited = render("linkerd", "rate-limit", service="details", limit_rps="25")
    assert body(limited, "Server", "details-http")["spec"]["accessPolicy"] == "all-unauthenticated"
    limit = body(limited, "HTTPLocalRateLimitPolicy", "details-rate-limit")["spec"]
    assert limit == {
        "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "details-http"},
        "total": {"requestsPerSecond": 25},
    }


def test_linkerd_access_log_rolls_every_deployment_and_cannot_fault_or_choose_lb() -> None:
    rendering = render("linkerd", "access-log", format="json")
    names = sorted(p.name for p in rendering.patches)
    assert names == ["details-v1", "productpage-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3"]
    template = patch(rendering, "Deployment", "reviews-v2")["spec"]["template"]
    assert template["metadata"]["annotations"] == {"config.linkerd.io/access-log": "json"}
    for function in ("fault-delay", "fault-abort", "lb-round-robin", "lb-least-request", "lb-random"):
        assert dialect_named("linkerd").support(function).level is SupportLevel.NOT_SUPPORTED


def test_consul_baseline_is_http_protocol_and_intentions_and_mtls_is_in_it() -> None:
    rendering = render("consul", "sidecar")
    assert body(rendering, "ServiceDefaults", "ratings")["spec"] == {"protocol": "http"}
    sources = body(rendering, "ServiceIntentions", "ratings")["spec"]["sources"]
    assert {s["name"] for s in sources} == {"productpage", "reviews"}
    answer = dialect_named("consul").support("mtls")
    assert answer.level is SupportLevel.IN_BASELINE and dialect_named("consul").baseline.mtls_encrypted


def test_consul_retries_and_timeout_are_service_routers() -> None:
    retries = render("consul", "retries", service="details", attempts="3")
    destination = body(retries, "ServiceRouter", "details")["spec"]["routes"][0]["destination"]
    assert destination == {
        "numRetries": 3,
        "retryOnConnectFailure": True,
        "retryOn": ["reset"],
        "retryOnStatusCodes": [502, 503, 504],
    }
    assert isinstance(dialect_named("consul").render("retries", {"per_try_timeout_ms": "100"}), Unsupported)
    timeout = render("consul", "timeout", timeout_ms="500")
    route = body(timeout, "ServiceRouter", "reviews")["spec"]["routes"][0]
    assert route == {"match": {"http": {"pathPrefix": "/"}}, "destination": {"requestTimeout": "500ms"}}


def test_consul_circuit_breaker_sits_in_the_callers_service_defaults() -> None:
    rendering = render("consul", "circuit-breaker", service="ratings", max_connections="10", max_pending="0")
    for caller in ("productpage", "reviews"):
        (override,) = body(rendering, "ServiceDefaults", caller)["spec"]["upstreamConfig"]["overrides"]
        assert override["name"] == "ratings"
        assert override["limits"] == {"maxConnections": 10, "maxPendingRequests": 0, "maxConcurrentRequests": 10}
        assert override["passiveHealthCheck"]["maxFailures"] == 5
    assert "upstreamConfig" not in body(rendering, "ServiceDefaults", "details")["spec"]


def test_consul_lb_split_rate_limit_and_access_log() -> None:
    balanced = render("consul", "lb-random", service="reviews")
    assert body(balanced, "ServiceResolver", "reviews")["spec"] == {"loadBalancer": {"policy": "random"}}
    split = render("consul", "traffic-split", weights="1,1,1")
    splits = body(split, "ServiceSplitter", "reviews")["spec"]["splits"]
    assert [s["serviceSubset"] for s in splits] == ["v1", "v2", "v3"] and sum(s["weight"] for s in splits) == 100
    subsets = body(split, "ServiceResolver", "reviews")["spec"]["subsets"]
    assert subsets["v2"] == {"filter": 'Service.Meta.version == "v2"'}
    limited = render("consul", "rate-limit", limit_rps="30")
    rate_limits = body(limited, "ServiceDefaults", "productpage")["spec"]["rateLimits"]
    assert rate_limits == {"instanceLevel": {"requestsPerSecond": 30, "requestsMaxBurst": 30}}
    logged = render("consul", "access-log", format="json")
    (proxy_defaults,) = logged.patches
    assert (
        proxy_defaults.kind == "ProxyDefaults" and proxy_defaults.name == "global" and proxy_defaults.create_if_missing
    )
    logs = proxy_defaults.patch["spec"]["accessLogs"]
    assert logs["enabled"] is True and '"status": "%RESPONSE_CODE%"' in logs["jsonFormat"]
    assert isinstance(dialect_named("consul").render("fault-abort"), Unsupported)


def test_bad_parameters_are_refused_as_the_testbed_refuses_them() -> None:
    istio = dialect_named("istio")
    with pytest.raises(UsageError, match=r"attempts='0': must be at least 1"):
        istio.render("retries", {"attempts": "0"})
    with pytest.raises(UsageError, match="has no parameter 'tries'"):
        istio.render("retries", {"tries": "2"})
    with pytest.raises(UsageError, match="expected 3 whole numbers"):
        istio.render("traffic-split", {"weights": "50,50"})
    with pytest.raises(UsageError, match="at least one weight"):
        istio.render("traffic-split", {"weights": "0,0,0"})
    with pytest.raises(UsageError, match="unknown function 'warp'"):
        istio.render("warp")
    with pytest.raises(UsageError, match="unknown mesh 'kuma'"):
        dialect_named("kuma")


def test_the_testbed_and_the_cluster_meshes_share_one_adapter_interface(tmp_path: Path) -> None:
    from meshload.coordinator.mesh import KubernetesMesh, MeshAdapter
    from meshload.coordinator.mesh.local import LocalTestbedMesh

    testbed = LocalTestbedMesh(tmp_path / "testbed")
    istio = KubernetesMesh("istio")  # connects only when the cluster is first used
    members = [name for name in vars(MeshAdapter) if not name.startswith("_")]
    assert {"apply", "remove", "support", "baseline", "start_sampling"} <= set(members)
    for adapter in (LocalTestbedMesh, KubernetesMesh):  # the classes: an instance's ingress_url may refuse
        assert all(hasattr(adapter, member) for member in members), adapter
    assert testbed.support("retries", {"attempts": "2"}).level is SupportLevel.SUPPORTED
    refused = testbed.support("retries", {"attempts": "zero"})
    assert refused.level is SupportLevel.NOT_SUPPORTED and "expected a whole number" in refused.reason
    assert testbed.support("warp").level is SupportLevel.NOT_SUPPORTED
    assert not testbed.baseline.mtls_encrypted and testbed.baseline.contains["load-balancing"] == "round robin"
    testbed.remove()  # not running: nothing to remove, and nothing is started
    assert not testbed.status().get("processes")
    assert istio.functions() == list(FUNCTIONS)
    with pytest.raises(UsageError, match="no ingress URL for istio"):
        _ = istio.ingress_url


def test_a_testbed_function_without_a_cluster_counterpart_is_not_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    from meshload.coordinator.mesh import catalogue
    from meshload.testbed import Profile

    profiles = {**catalogue.MESH_PROFILES, "grpc-l7": Profile("grpc-l7", "gRPC ratings balanced per request")}
    monkeypatch.setattr(catalogue, "MESH_PROFILES", profiles)
    for mesh in MESHES:
        answer = dialect_named(mesh).render("grpc-l7")
        assert isinstance(answer, Unsupported) and "gRPC ratings balanced per request" in answer.reason
