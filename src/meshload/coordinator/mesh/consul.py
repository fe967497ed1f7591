"""Consul service mesh on Kubernetes: BookInfo's functions as Consul config entries
(`consul.hashicorp.com/v1alpha1` ServiceDefaults, ServiceRouter, ServiceResolver, ServiceSplitter,
ServiceIntentions, ProxyDefaults).

The baseline declares every BookInfo service's protocol as http (Consul's L7 features need it, and every
cell must share it) and intentions that allow BookInfo's calls. Consul always requires mTLS between
sidecars (the only switch relaxes it to permissive), so `mtls` is "in baseline". Consul has no fault
injection. Gateway API routes are used by Consul only at its API gateway (north-south), so the traffic
split is a ServiceResolver with version subsets plus a ServiceSplitter; the subsets select on the
`version` service meta that `k8s/bookinfo` sets with `consul.hashicorp.com/service-meta-version`.
"""

from __future__ import annotations

import json
from typing import Any

from .base import MeshBaseline, Unsupported
from .catalogue import (
    INGRESS,
    SERVICES,
    FunctionCall,
    callers,
    milliseconds,
    percentages,
    retry_conditions,
    seconds,
    split_weights,
    versions,
)
from .dialect import ClusterReader, Dialect, MeshFacts, control_plane_build, proxy_build
from .manifests import Manifest, Patch, Rendering, owned

CONSUL = "consul.hashicorp.com/v1alpha1"
_LB = {"lb-round-robin": "round_robin", "lb-least-request": "least_request", "lb-random": "random"}
# Envoy command operators for one JSON object per request (ProxyDefaults accessLogs.jsonFormat).
_JSON_LOG_FORMAT = json.dumps(
    {
        "start_time": "%START_TIME%",
        "method": "%REQ(:METHOD)%",
        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "status": "%RESPONSE_CODE%",
        "bytes": "%BYTES_SENT%",
        "duration_ms": "%DURATION%",
        "upstream": "%UPSTREAM_HOST%",
        "request_id": "%REQ(X-REQUEST-ID)%",
        "end_user": "%REQ(END-USER)%",
    }
)


class ConsulDialect(Dialect):
    name = "consul"
    control_plane_namespace = "consul"
    baseline = MeshBaseline(
        mesh="consul",
        mtls_encrypted=True,
        contains={
            "mtls": "required between sidecars, always (Consul CA); the only switch relaxes it to permissive",
            "circuit-breaker": "Envoy's default outlier detection (5 consecutive 5xx, 30 s) is attached even "
            "without passiveHealthCheck",
            "load-balancing": "Envoy's default, round robin",
            "retries": "none (no retry policy unless one is set)",
            "protocol": "http on every BookInfo service (ServiceDefaults), which L7 functions need",
        },
    )
    owned_kinds = (
        (CONSUL, "ServiceDefaults"),
        (CONSUL, "ServiceIntentions"),
        (CONSUL, "ServiceRouter"),
        (CONSUL, "ServiceResolver"),
        (CONSUL, "ServiceSplitter"),
    )

    def _render(self, call: FunctionCall, namespace: str) -> Rendering | Unsupported:
        refusal = self._refusal(call)
        if refusal is not None:
            return refusal
        defaults = {service: self._service_defaults(namespace, service) for service in SERVICES}
        notes: list[str] = []
        if call.name == "circuit-breaker":
            for service in call.services:
                for caller in callers(service):
                    overrides = defaults[caller]["spec"].setdefault("upstreamConfig", {}).setdefault("overrides", [])
                    overrides.append(self._upstream_limits(call, service))
            notes.append("the limits are set per caller (its ServiceDefaults' upstreamConfig), as Envoy applies them")
        if call.name == "rate-limit":
            limit = call.int("limit_rps")
            for service in call.services:
                defaults[service]["spec"]["rateLimits"] = {
                    "instanceLevel": {"requestsPerSecond": limit, "requestsMaxBurst": limit}
                }
            notes.append("instance-level rate limits are a Consul Enterprise feature; Consul CE does not sync them")
        manifests = [owned(body, call.name) for body in defaults.values()]
        manifests += [self._intentions(call, namespace, service) for service in SERVICES]
        extra, patches, extra_notes = self._routing(call, namespace)
        return self.rendering(call, namespace, manifests + extra, patches, notes + extra_notes)

    def _refusal(self, call: FunctionCall) -> Unsupported | None:
        """The functions (and parameters) Consul cannot express, or whose effect its baseline has."""
        if call.name == "mtls":
            return self.unsupported(
                call,
                "Consul always requires mTLS between sidecars; the sidecar baseline already measures it",
                in_baseline=True,
            )
        if call.name in ("fault-delay", "fault-abort"):
            return self.unsupported(call, "Consul's config entries have no fault injection")
        if call.name == "retries" and call.int("per_try_timeout_ms") > 0:
            return self.unsupported(call, "a ServiceRouter has no per-try timeout; use per_try_timeout_ms=0")
        if call.name == "circuit-breaker" and "productpage" in call.services:
            return self.unsupported(
                call,
                "Consul sets upstream limits in the caller's ServiceDefaults, and productpage's caller is the "
                "ingress gateway",
            )
        return None

    def _routing(self, call: FunctionCall, namespace: str) -> tuple[list[Manifest], list[Patch], list[str]]:
        """The routers, resolvers, splitters and proxy defaults a function adds to the baseline."""
        name = call.name
        if name in ("retries", "timeout"):
            note = (
                "numRetries counts retries after the first try; HAProxy conditions map to Envoy's"
                if name == "retries"
                else "requestTimeout spans every retry of the request"
            )
            return [self._router(call, namespace, service) for service in call.services], [], [note]
        if name in _LB:
            policy = {"loadBalancer": {"policy": _LB[name]}}
            return [self._resolver(call, namespace, service, policy) for service in call.services], [], []
        if name == "access-log":
            note = "ProxyDefaults is mesh-wide: every sidecar and gateway of the Consul datacenter logs"
            return [], [self._access_logs(call, namespace)], [note]
        if name == "traffic-split":
            service = call.params["service"]
            subsets = {version: {"filter": f'Service.Meta.version == "{version}"'} for version in versions(service)}
            manifests = [
                self._resolver(call, namespace, service, {"subsets": subsets}),
                self._splitter(call, namespace, service),
            ]
            return manifests, [], ["weights are turned into percentages (Consul wants them to add up to 100)"]
        return [], [], []

    # -- resources -------------------------------------------------------------------------------

    def _service_defaults(self, namespace: str, service: str) -> dict[str, Any]:
        return {
            "apiVersion": CONSUL,
            "kind": "ServiceDefaults",
            "metadata": {"name": service, "namespace": namespace},
            "spec": {"protocol": "http"},
        }

    def _intentions(self, call: FunctionCall, namespace: str, service: str) -> Manifest:
        sources = [{"name": "*" if caller == INGRESS else caller, "action": "allow"} for caller in callers(service)]
        return owned(
            {
                "apiVersion": CONSUL,
                "kind": "ServiceIntentions",
                "metadata": {"name": service, "namespace": namespace},
                "spec": {"destination": {"name": service}, "sources": sources},
            },
            call.name,
        )

    def _upstream_limits(self, call: FunctionCall, service: str) -> dict[str, Any]:
        connections = call.int("max_connections")
        return {
            "name": service,
            "limits": {
                "maxConnections": connections,
                "maxPendingRequests": call.int("max_pending"),
                "maxConcurrentRequests": connections,
            },
            "passiveHealthCheck": {
                "interval": "1s",
                "maxFailures": call.int("consecutive_errors"),
                "enforcingConsecutive5xx": 100,
                "maxEjectionPercent": 100,
                "baseEjectionTime": seconds(call.params["ejection_s"]),
            },
        }

    def _router(self, call: FunctionCall, namespace: str, service: str) -> Manifest:
        destination: dict[str, Any] = {}
        if call.name == "timeout":
            destination["requestTimeout"] = milliseconds(call.params["timeout_ms"])
        else:
            conditions = retry_conditions(call.params["retry_on"])
            destination["numRetries"] = call.int("attempts")
            destination["retryOnConnectFailure"] = "connect-failure" in conditions.envoy
            others = [condition for condition in conditions.envoy if condition != "connect-failure"]
            if others:
                destination["retryOn"] = others
            if conditions.status_codes:
                destination["retryOnStatusCodes"] = list(conditions.status_codes)
        return owned(
            {
                "apiVersion": CONSUL,
                "kind": "ServiceRouter",
                "metadata": {"name": service, "namespace": namespace},
                "spec": {"routes": [{"match": {"http": {"pathPrefix": "/"}}, "destination": destination}]},
            },
            call.name,
        )

    def _resolver(self, call: FunctionCall, namespace: str, service: str, spec: dict[str, Any]) -> Manifest:
        return owned(
            {
                "apiVersion": CONSUL,
                "kind": "ServiceResolver",
                "metadata": {"name": service, "namespace": namespace},
                "spec": spec,
            },
            call.name,
        )

    def _splitter(self, call: FunctionCall, namespace: str, service: str) -> Manifest:
        shares = percentages(split_weights(call.params))
        return owned(
            {
                "apiVersion": CONSUL,
                "kind": "ServiceSplitter",
                "metadata": {"name": service, "namespace": namespace},
                "spec": {"splits": [{"weight": share, "serviceSubset": version} for version, share in shares.items()]},
            },
            call.name,
        )

    def _access_logs(self, call: FunctionCall, namespace: str) -> Patch:
        logs: dict[str, Any] = {"enabled": True, "type": "stdout"}
        if call.params["format"] == "json":
            logs["jsonFormat"] = _JSON_LOG_FORMAT
        return Patch(
            api_version=CONSUL,
            kind="ProxyDefaults",
            name="global",
            namespace=namespace,
            patch={"spec": {"accessLogs": logs}},
            why="Consul has one ProxyDefaults (named global) for the whole mesh",
            create_if_missing=True,
        )

    # -- facts -----------------------------------------------------------------------------------

    def facts(self, cluster: ClusterReader, namespace: str, control_plane_namespace: str) -> MeshFacts:
        mesh_build, mesh_source = control_plane_build(cluster, control_plane_namespace, ("StatefulSet",), "consul")
        proxy, proxy_source = proxy_build(cluster, namespace, "consul-dataplane")
        return MeshFacts(
            mesh=self.name,
            mesh_build=mesh_build,
            proxy_build=proxy,
            mtls_enabled=bool(proxy),
            sources={
                "mesh_build": mesh_source,
                "proxy_build": proxy_source,
                "mtls_enabled": "Consul requires mTLS between sidecars always" if proxy else "no meshed pod found",
            },
        )
