"""Istio: BookInfo's functions as DestinationRules, VirtualServices, a PeerAuthentication, an EnvoyFilter
and a Telemetry resource (`networking.istio.io/v1`, `security.istio.io/v1`, `telemetry.istio.io/v1`,
EnvoyFilter `v1alpha3`).

The baseline matches the testbed's `sidecar`: plaintext between sidecars (PeerAuthentication DISABLE
*and* DestinationRules with `tls.mode: DISABLE`, since PERMISSIVE plus auto-mTLS would encrypt anyway),
round robin (Istio's default is LEAST_REQUEST), and no retries (Istio retries twice unless a route says
`retries: {attempts: 0}`). Every function is that baseline with one change. productpage's caller is the
ingress gateway, routed by the `bookinfo` VirtualService of `k8s/bookinfo/istio/`; a function aimed at
productpage is a merge patch on that route (reverted on remove).
"""

from __future__ import annotations

from typing import Any

from .base import MeshBaseline, Unsupported
from .catalogue import PORT, SERVICES, FunctionCall, milliseconds, retry_conditions, seconds, split_weights, versions
from .dialect import ClusterReader, Dialect, MeshFacts, control_plane_build, proxy_build
from .gateway_api import weighted_route
from .manifests import Manifest, Patch, Rendering, owned

NETWORKING = "networking.istio.io/v1"
SECURITY = "security.istio.io/v1"
TELEMETRY = "telemetry.istio.io/v1"
ENVOY_FILTER = "networking.istio.io/v1alpha3"

GATEWAY_VIRTUAL_SERVICE = "bookinfo"  # k8s/bookinfo/istio/bookinfo-gateway.yaml
GATEWAY = "bookinfo-gateway"
# The paths bookinfo-gateway.yaml routes to productpage (`/` and `/health` are not exposed).
GATEWAY_MATCHES: tuple[dict[str, Any], ...] = (
    {"uri": {"exact": "/productpage"}},
    {"uri": {"prefix": "/static"}},
    {"uri": {"exact": "/login"}},
    {"uri": {"exact": "/logout"}},
    {"uri": {"prefix": "/api/v1/products"}},
)

_LB = {"lb-round-robin": "ROUND_ROBIN", "lb-least-request": "LEAST_REQUEST", "lb-random": "RANDOM"}


class IstioDialect(Dialect):
    name = "istio"
    control_plane_namespace = "istio-system"
    baseline = MeshBaseline(
        mesh="istio",
        mtls_encrypted=False,
        contains={
            "mtls": "off: PeerAuthentication DISABLE and DestinationRules tls DISABLE (auto-mTLS would encrypt)",
            "load-balancing": "ROUND_ROBIN, set explicitly (Istio's default is LEAST_REQUEST)",
            "retries": "none: every route says attempts 0 (Istio's default is 2 retries)",
            "circuit-breaker": "none (no connection pool limits, no outlier detection)",
        },
    )
    owned_kinds = (
        (NETWORKING, "DestinationRule"),
        (NETWORKING, "VirtualService"),
        (SECURITY, "PeerAuthentication"),
        (TELEMETRY, "Telemetry"),
        (ENVOY_FILTER, "EnvoyFilter"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    )

    def _render(self, call: FunctionCall, namespace: str) -> Rendering | Unsupported:
        notes: list[str] = []
        if call.name == "mtls" and call.params["min_tls_version"] != "TLSv1.2":
            return self.unsupported(
                call,
                "the lowest TLS version between sidecars is install-time mesh config "
                "(meshConfig.meshMTLS.minProtocolVersion: TLSV1_3), not a resource",
            )
        if call.name == "circuit-breaker" and call.int("max_pending") == 0:
            return self.unsupported(call, "Istio reads http1MaxPendingRequests 0 as unlimited; the smallest queue is 1")
        if call.name == "access-log" and call.params["format"] == "json":
            return self.unsupported(
                call,
                "the built-in envoy provider logs text; JSON needs an envoyFileAccessLog extension provider "
                "in meshConfig (install time)",
            )
        targets = set(call.services)
        manifests: list[Manifest] = [self._peer_authentication(call, namespace)]
        manifests += [self._destination_rule(call, namespace, service, service in targets) for service in SERVICES]
        patches: list[Patch] = []
        for service in SERVICES:
            if call.name == "traffic-split" and service == call.params["service"]:
                continue  # the HTTPRoute routes it; Istio does not merge a VirtualService and an HTTPRoute
            targeted = service in targets
            if service == "productpage" and targeted:
                patches.append(self._gateway_patch(call, namespace))
            manifests.append(self._virtual_service(call, namespace, service, targeted and service != "productpage"))
        if call.name == "rate-limit":
            manifests += [self._local_rate_limit(call, namespace, service) for service in call.services]
            notes.append("Envoy's local rate limit is a token bucket refilled every second, HAProxy's a sliding window")
        if call.name == "access-log":
            manifests.append(self._telemetry(call, namespace))
            notes.append("a namespace Telemetry logs BookInfo's sidecars, not the ingress gateway in istio-system")
        if call.name == "traffic-split":
            service = call.params["service"]
            manifests.append(weighted_route(service, namespace, split_weights(call.params), call.name))
            manifests += [
                self._destination_rule(call, namespace, f"{service}-{version}", False) for version in versions(service)
            ]
            notes.append(
                "Istio applies its default retry policy (2 attempts) to HTTPRoute routes: this cell's reviews "
                "hop retries where the baseline's does not"
            )
        if call.name == "retries":
            notes.append(
                "retry_on conditions map to Envoy's: conn-failure -> connect-failure, empty-response and "
                "response-timeout -> reset, status codes stay codes"
            )
        if call.name == "circuit-breaker":
            notes.append(
                "maxConnections limits each caller's proxy towards all instances of the service together, "
                "HAProxy's maxconn each instance"
            )
        if call.name in ("fault-delay", "fault-abort"):
            notes.append("Istio switches off retries and timeouts on a route that injects a fault")
        return self.rendering(call, namespace, manifests, patches, notes)

    # -- resources -------------------------------------------------------------------------------

    def _peer_authentication(self, call: FunctionCall, namespace: str) -> Manifest:
        mode = "STRICT" if call.name == "mtls" else "DISABLE"
        return owned(
            {
                "apiVersion": SECURITY,
                "kind": "PeerAuthentication",
                "metadata": {"name": "default", "namespace": namespace},
                "spec": {"mtls": {"mode": mode}},
            },
            call.name,
        )

    def _destination_rule(self, call: FunctionCall, namespace: str, host: str, targeted: bool) -> Manifest:
        policy: dict[str, Any] = {
            "tls": {"mode": "ISTIO_MUTUAL" if call.name == "mtls" else "DISABLE"},
            "loadBalancer": {"simple": _LB[call.name] if targeted and call.name in _LB else "ROUND_ROBIN"},
        }
        if targeted and call.name == "circuit-breaker":
            policy["connectionPool"] = {
                "tcp": {"maxConnections": call.int("max_connections")},
                "http": {"http1MaxPendingRequests": call.int("max_pending")},
            }
            policy["outlierDetection"] = {
                "consecutive5xxErrors": call.int("consecutive_errors"),
                "interval": "1s",
                "baseEjectionTime": seconds(call.params["ejection_s"]),
                "maxEjectionPercent": 100,
            }
        return owned(
            {
                "apiVersion": NETWORKING,
                "kind": "DestinationRule",
                "metadata": {"name": host, "namespace": namespace},
                "spec": {"host": host, "trafficPolicy": policy},
            },
            call.name,
        )

    def _virtual_service(self, call: FunctionCall, namespace: str, service: str, targeted: bool) -> Manifest:
        destination = {"host": service, "port": {"number": PORT}}
        routes = self._routes(call, None, destination, targeted)
        return owned(
            {
                "apiVersion": NETWORKING,
                "kind": "VirtualService",
                "metadata": {"name": service, "namespace": namespace},
                "spec": {"hosts": [service], "http": routes},
            },
            call.name,
        )

    def _gateway_patch(self, call: FunctionCall, namespace: str) -> Patch:
        destination = {"host": "productpage", "port": {"number": PORT}}
        routes = self._routes(call, list(GATEWAY_MATCHES), destination, True)
        return Patch(
            api_version=NETWORKING,
            kind="VirtualService",
            name=GATEWAY_VIRTUAL_SERVICE,
            namespace=namespace,
            patch={"spec": {"http": routes}},
            why="productpage's caller is the ingress gateway; its route carries the function",
        )

    def _routes(
        self, call: FunctionCall, matches: list[dict[str, Any]] | None, destination: dict[str, Any], targeted: bool
    ) -> list[dict[str, Any]]:
        """The http routes of one VirtualService: the plain route (retries off), with the function's
        settings when `targeted`; a fault for one end user gets a route of its own before it."""
        plain: dict[str, Any] = {"route": [{"destination": destination}], "retries": {"attempts": 0}}
        if matches:
            plain = {"match": matches, **plain}
        if not targeted:
            return [plain]
        if call.name == "retries":
            return [{**plain, "retries": self._retries(call)}]
        if call.name == "timeout":
            return [{**plain, "timeout": milliseconds(call.params["timeout_ms"])}]
        if call.name in ("fault-delay", "fault-abort"):
            percentage: dict[str, Any] = {"value": call.float("percent")}
            fault: dict[str, Any]
            if call.name == "fault-delay":
                fault = {"delay": {"fixedDelay": milliseconds(call.params["delay_ms"]), "percentage": percentage}}
            else:
                fault = {"abort": {"httpStatus": call.int("status"), "percentage": percentage}}
            user = call.params["end_user"]
            if not user:
                return [{**plain, "fault": fault}]
            header = {"headers": {"end-user": {"exact": user}}}
            faulted = {**plain, "match": [{**match, **header} for match in (matches or [{}])], "fault": fault}
            return [faulted, plain]
        return [plain]

    def _retries(self, call: FunctionCall) -> dict[str, Any]:
        conditions = retry_conditions(call.params["retry_on"])
        retry_on = ",".join([*conditions.envoy, *(str(code) for code in conditions.status_codes), *conditions.unknown])
        retries: dict[str, Any] = {"attempts": call.int("attempts"), "retryOn": retry_on}
        if call.int("per_try_timeout_ms") > 0:
            retries["perTryTimeout"] = milliseconds(call.params["per_try_timeout_ms"])
        return retries

    def _local_rate_limit(self, call: FunctionCall, namespace: str, service: str) -> Manifest:
        limit = call.int("limit_rps")
        return owned(
            {
                "apiVersion": ENVOY_FILTER,
                "kind": "EnvoyFilter",
                "metadata": {"name": f"{service}-rate-limit", "namespace": namespace},
                "spec": {
                    "workloadSelector": {"labels": {"app": service}},
                    "configPatches": [
                        {
                            "applyTo": "HTTP_FILTER",
                            "match": {
                                "context": "SIDECAR_INBOUND",
                                "listener": {
                                    "filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager"}}
                                },
                            },
                            "patch": {
                                "operation": "INSERT_BEFORE",
                                "value": {
                                    "name": "envoy.filters.http.local_ratelimit",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
                                        "type_url": (
                                            "type.googleapis.com/"
                                            "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
                                        ),
                                        "value": {
                                            "stat_prefix": "http_local_rate_limiter",
                                            "token_bucket": {
                                                "max_tokens": limit,
                                                "tokens_per_fill": limit,
                                                "fill_interval": "1s",
                                            },
                                            "filter_enabled": _all_requests("local_rate_limit_enabled"),
                                            "filter_enforced": _all_requests("local_rate_limit_enforced"),
                                            "response_headers_to_add": [
                                                {
                                                    "append": False,
                                                    "header": {"key": "x-local-rate-limit", "value": "true"},
                                                }
                                            ],
                                        },
                                    },
                                },
                            },
                        }
                    ],
                },
            },
            call.name,
        )

    def _telemetry(self, call: FunctionCall, namespace: str) -> Manifest:
        return owned(
            {
                "apiVersion": TELEMETRY,
                "kind": "Telemetry",
                "metadata": {"name": "access-log", "namespace": namespace},
                "spec": {"accessLogging": [{"providers": [{"name": "envoy"}]}]},
            },
            call.name,
        )

    # -- facts -----------------------------------------------------------------------------------

    def facts(self, cluster: ClusterReader, namespace: str, control_plane_namespace: str) -> MeshFacts:
        mesh_build, mesh_source = control_plane_build(cluster, control_plane_namespace, ("Deployment",), "discovery")
        proxy, proxy_source = proxy_build(cluster, namespace, "istio-proxy")
        mode, mode_source = self._mtls_mode(cluster, namespace, control_plane_namespace)
        plaintext_rules = [
            rule["metadata"]["name"]
            for rule in cluster.list(NETWORKING, "DestinationRule", namespace)
            if rule.get("spec", {}).get("trafficPolicy", {}).get("tls", {}).get("mode") == "DISABLE"
        ]
        # PERMISSIVE plus auto-mTLS encrypts meshed traffic unless a DestinationRule turns TLS off.
        enabled = mode == "STRICT" or (mode in ("PERMISSIVE", "UNSET") and not plaintext_rules)
        mtls_source = f"PeerAuthentication mode {mode} ({mode_source})"
        if plaintext_rules and mode != "STRICT":
            mtls_source += f"; DestinationRules with tls DISABLE: {', '.join(sorted(plaintext_rules))}"
        return MeshFacts(
            mesh=self.name,
            mesh_build=mesh_build,
            proxy_build=proxy,
            mtls_enabled=enabled,
            sources={"mesh_build": mesh_source, "proxy_build": proxy_source, "mtls_enabled": mtls_source},
        )

    def _mtls_mode(self, cluster: ClusterReader, namespace: str, root_namespace: str) -> tuple[str, str]:
        """The namespace-wide PeerAuthentication's mode, else the mesh-wide one, else PERMISSIVE."""
        for where in (namespace, root_namespace):
            for policy in cluster.list(SECURITY, "PeerAuthentication", where):
                spec = policy.get("spec", {})
                if spec.get("selector"):
                    continue  # a workload's own policy, not the namespace's
                mode = str(spec.get("mtls", {}).get("mode", "UNSET"))
                return mode, f"{where}/{policy['metadata']['name']}"
        return "PERMISSIVE", "no PeerAuthentication: Istio's default"


def _all_requests(runtime_key: str) -> dict[str, Any]:
    return {"runtime_key": runtime_key, "default_value": {"numerator": 100, "denominator": "HUNDRED"}}
