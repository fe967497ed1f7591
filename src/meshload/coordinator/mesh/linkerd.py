"""Linkerd (2.16 and later): BookInfo's functions as annotations on the Services (retries, timeouts,
failure accrual: read by the callers' proxies), `policy.linkerd.io` resources (Server, authorization,
HTTPLocalRateLimitPolicy) and a Gateway API HTTPRoute for the traffic split.

Linkerd's baseline already encrypts and authenticates every connection between meshed pods (there is
no switch to turn that off), balances by EWMA latency (no other policy), and neither retries nor times
out unless asked. So `mtls` here means *requiring* meshed identity on every BookInfo port (a Server
with an AuthorizationPolicy): what it costs on top of encryption that is always on. Linkerd has no
fault injection and no choice of balancing policy; those functions are "not supported".
"""

from __future__ import annotations

from .base import MeshBaseline, Unsupported
from .catalogue import PORT, SERVICES, FunctionCall, deployments, milliseconds, retry_conditions, seconds, split_weights
from .dialect import ClusterReader, Dialect, MeshFacts, control_plane_build, proxy_build
from .gateway_api import weighted_route
from .manifests import Manifest, Patch, Rendering, owned

POLICY = "policy.linkerd.io/v1beta3"
POLICY_ALPHA = "policy.linkerd.io/v1alpha1"
ACCESS_LOG = "config.linkerd.io/access-log"


class LinkerdDialect(Dialect):
    name = "linkerd"
    control_plane_namespace = "linkerd"
    baseline = MeshBaseline(
        mesh="linkerd",
        mtls_encrypted=True,
        contains={
            "mtls": "on between meshed pods, always (identity per ServiceAccount); not required: unmeshed "
            "clients are still admitted",
            "load-balancing": "EWMA latency-aware, per request; Linkerd offers no other policy",
            "retries": "none (opt-in)",
            "timeout": "none (opt-in)",
        },
    )
    owned_kinds = (
        (POLICY, "Server"),
        (POLICY_ALPHA, "MeshTLSAuthentication"),
        (POLICY_ALPHA, "AuthorizationPolicy"),
        (POLICY_ALPHA, "HTTPLocalRateLimitPolicy"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    )

    def _render(self, call: FunctionCall, namespace: str) -> Rendering | Unsupported:
        if call.name in ("fault-delay", "fault-abort"):
            return self.unsupported(
                call,
                "Linkerd has no fault injection; its docs send a share of traffic to an error-injecting backend, "
                "which is traffic-split",
            )
        if call.name.startswith("lb-"):
            return self.unsupported(call, "Linkerd always balances by EWMA latency; there is no policy to choose")
        renderers = {
            "sidecar": self._sidecar,
            "mtls": self._mtls,
            "retries": self._retries,
            "timeout": self._timeout,
            "circuit-breaker": self._circuit_breaker,
            "rate-limit": self._rate_limits,
            "access-log": self._access_log,
            "traffic-split": self._traffic_split,
        }
        return renderers[call.name](call, namespace)

    def _sidecar(self, call: FunctionCall, namespace: str) -> Rendering:
        return self.rendering(call, namespace, notes=["Linkerd's baseline needs no resource"])

    def _mtls(self, call: FunctionCall, namespace: str) -> Rendering:
        manifests = [self._any_meshed_identity(call, namespace)]
        for service in SERVICES:
            manifests.append(self._server(call, namespace, service, access_policy="deny"))
            manifests.append(self._require_identity(call, namespace, service))
        notes = [
            "encryption is on in the baseline too; this adds the requirement of a meshed identity on every "
            "BookInfo port (an unmeshed ingress is refused)",
            f"Linkerd proxies speak TLS 1.3 only, so min_tls_version={call.params['min_tls_version']} holds",
        ]
        return self.rendering(call, namespace, manifests, notes=notes)

    def _timeout(self, call: FunctionCall, namespace: str) -> Rendering:
        annotations = {"timeout.linkerd.io/request": milliseconds(call.params["timeout_ms"])}
        patches = [self._service_annotations(call, namespace, service, annotations) for service in call.services]
        return self.rendering(call, namespace, patches=patches, notes=_caller_notes(call))

    def _circuit_breaker(self, call: FunctionCall, namespace: str) -> Rendering:
        annotations = {
            "balancer.linkerd.io/failure-accrual": "consecutive",
            "balancer.linkerd.io/failure-accrual-consecutive-max-failures": call.params["consecutive_errors"],
            "balancer.linkerd.io/failure-accrual-consecutive-min-penalty": seconds(call.params["ejection_s"]),
            "balancer.linkerd.io/failure-accrual-consecutive-max-penalty": seconds(call.params["ejection_s"]),
        }
        patches = [self._service_annotations(call, namespace, s, annotations) for s in call.services]
        notes = [
            "Linkerd's failure accrual ejects an endpoint after consecutive 5xx and probes it with a real request "
            "after the penalty; it has no connection or pending-request limits",
        ]
        return self.rendering(call, namespace, patches=patches, notes=notes, ignored=("max_connections", "max_pending"))

    def _rate_limits(self, call: FunctionCall, namespace: str) -> Rendering:
        manifests = []
        for service in call.services:
            manifests.append(self._server(call, namespace, service, access_policy="all-unauthenticated"))
            manifests.append(self._rate_limit(call, namespace, service))
        notes = [
            "Linkerd's local rate limit is GCRA with 1 s of tolerance per inbound proxy; HAProxy's a sliding window"
        ]
        return self.rendering(call, namespace, manifests, notes=notes)

    def _access_log(self, call: FunctionCall, namespace: str) -> Rendering:
        value = "json" if call.params["format"] == "json" else "apache"
        patches = [
            Patch(
                api_version="apps/v1",
                kind="Deployment",
                name=deployment,
                namespace=namespace,
                patch={"spec": {"template": {"metadata": {"annotations": {ACCESS_LOG: value}}}}},
                why="the proxy reads its access-log setting when the pod starts: the Deployment rolls out",
            )
            for deployment in deployments()
        ]
        notes = [
            "format http is Linkerd's apache (common log) format; logs go to the proxy's stderr",
            "the pods restart to pick the setting up (and again on remove)",
        ]
        return self.rendering(call, namespace, patches=patches, notes=notes)

    def _traffic_split(self, call: FunctionCall, namespace: str) -> Rendering:
        route = weighted_route(call.params["service"], namespace, split_weights(call.params), call.name)
        notes = ["Gateway API HTTPRoute on the Service (Linkerd 2.18+; older releases use policy.linkerd.io HTTPRoute)"]
        return self.rendering(call, namespace, [route], notes=notes)

    def _retries(self, call: FunctionCall, namespace: str) -> Rendering | Unsupported:
        conditions = retry_conditions(call.params["retry_on"])
        if not conditions.status_codes:
            return self.unsupported(
                call,
                f"Linkerd retries by response status only; retry_on={call.params['retry_on']!r} names no status code",
            )
        annotations = {
            "retry.linkerd.io/http": ",".join(str(code) for code in conditions.status_codes),
            "retry.linkerd.io/limit": call.params["attempts"],
        }
        if call.int("per_try_timeout_ms") > 0:
            annotations["retry.linkerd.io/timeout"] = milliseconds(call.params["per_try_timeout_ms"])
        patches = [self._service_annotations(call, namespace, s, annotations) for s in call.services]
        notes = _caller_notes(call)
        dropped = [*conditions.envoy, *conditions.unknown]
        if dropped:
            notes.append(
                "Linkerd retries by status code only: the conditions other than codes are not applied "
                "(connection failures are handled by its load balancer)"
            )
        return self.rendering(call, namespace, patches=patches, notes=notes)

    # -- resources -------------------------------------------------------------------------------

    def _service_annotations(
        self, call: FunctionCall, namespace: str, service: str, annotations: dict[str, str]
    ) -> Patch:
        return Patch(
            api_version="v1",
            kind="Service",
            name=service,
            namespace=namespace,
            patch={"metadata": {"annotations": dict(annotations)}},
            why=f"Linkerd reads {call.name} from annotations on the Service its callers address",
        )

    def _server(self, call: FunctionCall, namespace: str, service: str, *, access_policy: str) -> Manifest:
        return owned(
            {
                "apiVersion": POLICY,
                "kind": "Server",
                "metadata": {"name": f"{service}-http", "namespace": namespace},
                "spec": {
                    "podSelector": {"matchLabels": {"app": service}},
                    "port": PORT,
                    "proxyProtocol": "HTTP/1",
                    "accessPolicy": access_policy,
                },
            },
            call.name,
        )

    def _any_meshed_identity(self, call: FunctionCall, namespace: str) -> Manifest:
        return owned(
            {
                "apiVersion": POLICY_ALPHA,
                "kind": "MeshTLSAuthentication",
                "metadata": {"name": "any-meshed", "namespace": namespace},
                "spec": {"identities": ["*"]},
            },
            call.name,
        )

    def _require_identity(self, call: FunctionCall, namespace: str, service: str) -> Manifest:
        return owned(
            {
                "apiVersion": POLICY_ALPHA,
                "kind": "AuthorizationPolicy",
                "metadata": {"name": f"{service}-mtls-only", "namespace": namespace},
                "spec": {
                    "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": f"{service}-http"},
                    "requiredAuthenticationRefs": [
                        {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "any-meshed"}
                    ],
                },
            },
            call.name,
        )

    def _rate_limit(self, call: FunctionCall, namespace: str, service: str) -> Manifest:
        return owned(
            {
                "apiVersion": POLICY_ALPHA,
                "kind": "HTTPLocalRateLimitPolicy",
                "metadata": {"name": f"{service}-rate-limit", "namespace": namespace},
                "spec": {
                    "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": f"{service}-http"},
                    "total": {"requestsPerSecond": call.int("limit_rps")},
                },
            },
            call.name,
        )

    # -- facts -----------------------------------------------------------------------------------

    def facts(self, cluster: ClusterReader, namespace: str, control_plane_namespace: str) -> MeshFacts:
        mesh_build, mesh_source = control_plane_build(cluster, control_plane_namespace, ("Deployment",), "destination")
        proxy, proxy_source = proxy_build(cluster, namespace, "linkerd-proxy")
        return MeshFacts(
            mesh=self.name,
            mesh_build=mesh_build,
            proxy_build=proxy,
            mtls_enabled=bool(proxy),
            sources={
                "mesh_build": mesh_source,
                "proxy_build": proxy_source,
                "mtls_enabled": "Linkerd encrypts between meshed pods always" if proxy else "no meshed pod found",
            },
        )


def _caller_notes(call: FunctionCall) -> list[str]:
    """Linkerd applies Service annotations in the *callers'* proxies: productpage's caller is the ingress."""
    if "productpage" in call.services:
        return ["for productpage the caller is the ingress controller: it applies only if that is meshed"]
    return []
