"""The traffic-control functions the testbed can put in force, one at a time, and their parameters.

Each profile is the plain mesh of the topology in force plus one function (or, for `none`, no
proxies at all). Values are checked here so a bad `--set key=value` fails before any proxy is
touched; so is whether the function applies in the topology (see `Profile.refusal`).

The parameter names are the mesh-neutral vocabulary the mesh adapters (`coordinator/mesh/`) take as
well; the ones added for issues 12 and 15:

    traffic-split  service   the service whose traffic is split: reviews (the one with versions)
                   weights   one whole number per version, in version order (v1,v2,v3), e.g.
                             `--set weights=80,10,10`: the `weight` of each `backendRefs` entry of a
                             Gateway API HTTPRoute (GAMMA, attached to the service) naming the
                             per-version Services reviews-v1, reviews-v2, reviews-v3 (BookInfo's
                             bookinfo-versions.yaml). Relative, as in Gateway API: 0 sends a version
                             nothing, the sum need not be 100 (at least one must be above 0).
                             The testbed: HAProxy server weights on the callers' reviews backend
                             (weighted round robin, so exact shares over a cycle; Envoy picks at
                             random by weight, so a mesh's shares vary more over few requests).
    grpc-l4        lb        round-robin | least-request | random. The proxies carry gRPC as TCP
                             and pick a replica per *connection* (Istio: a `tcp-` port name or
                             appProtocol tcp; Linkerd: an opaque port; Consul: protocol "tcp").
                             Least-request is least connections here. HAProxy: `mode tcp`.
    grpc-l7        lb        the same choices. The proxies speak HTTP/2 and pick a replica per
                             *request* (Istio/Linkerd's default for gRPC; Consul: protocol "grpc").
                             HAProxy: `mode http`, `proto h2` on the bind and server lines.

Under every function but `grpc-l4` the gRPC route is layer 7 (as a mesh treats gRPC by default).

Topologies: every function applies in `sidecar` and `per-node`. In `ingress-only` the services call
each other directly, so `mtls`, `traffic-split` and the `lb-*` functions do not apply there, and the
functions taking a `service` apply only to the gateway's route (`service=productpage`, or `all`).
`Profile.notes()` says so per function (`meshload testbed functions` prints it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import TestbedFailure
from .topology import INGRESS_ONLY, SERVICES, TOPOLOGIES, instances_of

ALL_SERVICES = "all"
WEIGHT_MAX = 1_000_000  # Gateway API's bound on a backendRef weight
LB_POLICIES = ("round-robin", "least-request", "random")
# In ingress-only the gateway's route to productpage is the only proxied hop.
GATEWAY_SERVICES = ("productpage", ALL_SERVICES)


@dataclass(frozen=True)
class Param:
    default: str
    help: str
    kind: str = "str"  # "str", "int", "float", "choice", "service", "weights"
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def check(self, profile: str, key: str, value: str) -> str:
        where = f"{profile} parameter {key}={value!r}"
        if self.kind in ("int", "float"):
            try:
                number = int(value) if self.kind == "int" else float(value)
            except ValueError:
                raise TestbedFailure(f"{where}: expected {'a whole' if self.kind == 'int' else 'a'} number") from None
            if self.minimum is not None and number < self.minimum:
                raise TestbedFailure(f"{where}: must be at least {self.minimum:g}")
            if self.maximum is not None and number > self.maximum:
                raise TestbedFailure(f"{where}: must be at most {self.maximum:g}")
            return value
        if self.kind == "weights":
            return _check_weights(where, value, self.choices)
        allowed = self.choices
        if self.kind == "service":
            allowed = (*SERVICES, ALL_SERVICES) if ALL_SERVICES in self.choices else SERVICES
        if allowed and value not in allowed:
            raise TestbedFailure(f"{where}: choose one of {', '.join(allowed)}")
        return value


def _check_weights(where: str, value: str, versions: tuple[str, ...]) -> str:
    example = ",".join(["1"] * len(versions))
    parts = [part.strip() for part in value.split(",")]
    if len(parts) != len(versions) or not all(part.isdigit() for part in parts):
        raise TestbedFailure(
            f"{where}: expected {len(versions)} whole numbers, one per version ({','.join(versions)}),"
            f" e.g. weights={example}"
        )
    weights = [int(part) for part in parts]
    if max(weights) > WEIGHT_MAX:
        raise TestbedFailure(f"{where}: each weight must be at most {WEIGHT_MAX}")
    if not any(weights):
        raise TestbedFailure(f"{where}: at least one weight must be above 0")
    return ",".join(map(str, weights))


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    params: dict[str, Param] = field(default_factory=dict)
    proxies: bool = True
    not_in: dict[str, str] = field(default_factory=dict)  # topology -> why the function does not apply

    @property
    def topologies(self) -> tuple[str, ...]:
        """The topologies the function applies in (with some parameters only, see `notes`)."""
        return tuple(topology for topology in TOPOLOGIES if topology not in self.not_in)

    def notes(self) -> dict[str, str]:
        """Where the function does not apply, or applies only partly, and why."""
        found = {topology: f"does not apply: {why}" for topology, why in self.not_in.items()}
        service = self.params.get("service")
        if INGRESS_ONLY not in found and service is not None and service.kind == "service":
            found[INGRESS_ONLY] = "service=productpage only: the gateway's route is the one proxied hop there"
        return found

    def refusal(self, topology: str, values: dict[str, str]) -> str | None:
        """Why the function with these (resolved) values cannot be put in force in `topology`, as
        one line; None when it can."""
        if topology in self.not_in:
            return f"{self.name} does not apply in the {topology} topology: {self.not_in[topology]}"
        service = values.get("service")
        if topology == INGRESS_ONLY and "service" in self.params and service not in GATEWAY_SERVICES:
            return (
                f"{self.name} on {service} does not apply in the {topology} topology: services call each other"
                " directly there and only the gateway's route to productpage passes a proxy;"
                " use --set service=productpage, or another topology"
            )
        return None

    def resolve(self, overrides: dict[str, str] | None) -> dict[str, str]:
        """Defaults overridden by `overrides`, each value checked; unknown keys are refused."""
        values = {key: param.default for key, param in self.params.items()}
        for key, value in (overrides or {}).items():
            param = self.params.get(key)
            if param is None:
                known = ", ".join(sorted(self.params)) or "none"
                raise TestbedFailure(f"profile {self.name} has no parameter {key!r} (parameters: {known})")
            values[key] = param.check(self.name, key, str(value).strip())
        return values


def _service(default: str, what: str, *, allow_all: bool = False) -> Param:
    return Param(default, what, kind="service", choices=(ALL_SERVICES,) if allow_all else ())


def _percent(default: str) -> Param:
    return Param(default, "share of requests affected, in percent", kind="float", minimum=0, maximum=100)


def _lb(what: str) -> Param:
    return Param("round-robin", what, kind="choice", choices=LB_POLICIES)


_NO_SERVICE_PROXIES = "services call each other directly there, with no proxy between them"
_REVIEWS_VERSIONS = tuple(instance.version for instance in instances_of("reviews"))


_LB_NOT_IN = {INGRESS_ONLY: "the one proxied route, gateway to productpage, has a single instance to pick"}

PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("none", "no proxies at all: apps call each other directly (the baseline)", proxies=False),
        Profile("sidecar", "the topology's plain proxies (sidecars, node proxies or the gateway), round robin"),
        Profile(
            "mtls",
            "sidecar-to-sidecar TLS with client certificates from the testbed CA (STRICT)",
            {
                "min_tls_version": Param(
                    "TLSv1.2", "lowest TLS version accepted", kind="choice", choices=("TLSv1.2", "TLSv1.3")
                )
            },
            not_in={INGRESS_ONLY: f"{_NO_SERVICE_PROXIES}, so no proxy-to-proxy hop to encrypt"},
        ),
        Profile(
            "retries",
            "the caller's sidecar retries failed requests",
            {
                "service": _service(ALL_SERVICES, "whose callers retry", allow_all=True),
                "attempts": Param("3", "retries after the first try", kind="int", minimum=1, maximum=10),
                "retry_on": Param(
                    "conn-failure,empty-response,response-timeout,502,503,504", "HAProxy retry-on conditions"
                ),
                "per_try_timeout_ms": Param("0", "per-try timeout (0: none)", kind="int", minimum=0),
            },
        ),
        Profile(
            "timeout",
            "the caller's sidecar gives up on a slow answer with 504",
            {
                "service": _service("reviews", "the service whose calls time out"),
                "timeout_ms": Param("500", "request timeout", kind="int", minimum=1),
            },
        ),
        Profile(
            "circuit-breaker",
            "connection limits with fast 503 on overflow, and ejection of a failing instance",
            {
                "service": _service("reviews", "the service guarded"),
                "max_connections": Param("32", "concurrent requests per instance", kind="int", minimum=1),
                "max_pending": Param("16", "requests waiting for a free connection", kind="int", minimum=0),
                "consecutive_errors": Param("5", "consecutive 5xx/connect errors that eject", kind="int", minimum=1),
                "ejection_s": Param("30", "how long an ejected instance stays out", kind="float", minimum=0.5),
            },
        ),
        Profile(
            "rate-limit",
            "the service's inbound sidecar answers 429 above a request rate",
            {
                "service": _service("productpage", "the service limited"),
                "limit_rps": Param("1000", "requests admitted per second (sliding window)", kind="int", minimum=1),
            },
        ),
        Profile(
            "fault-delay",
            "the caller's sidecar delays requests (VirtualService fault.delay)",
            {
                "service": _service("ratings", "the service whose calls are delayed"),
                "delay_ms": Param("7000", "added delay", kind="int", minimum=0),
                "percent": _percent("100"),
                "end_user": Param("jason", "only for this signed-in user ('' = everyone)"),
            },
        ),
        Profile(
            "fault-abort",
            "the caller's sidecar answers with an error status instead (VirtualService fault.abort)",
            {
                "service": _service("ratings", "the service whose calls are aborted"),
                "status": Param("500", "status returned", kind="int", minimum=200, maximum=599),
                "percent": _percent("100"),
                "end_user": Param("jason", "only for this signed-in user ('' = everyone)"),
            },
        ),
        Profile(
            "lb-round-robin",
            "callers take turns over a service's instances",
            {"service": _service(ALL_SERVICES, "balanced service", allow_all=True)},
            not_in=_LB_NOT_IN,
        ),
        Profile(
            "lb-least-request",
            "callers pick the instance with the fewest requests in flight",
            {"service": _service(ALL_SERVICES, "balanced service", allow_all=True)},
            not_in=_LB_NOT_IN,
        ),
        Profile(
            "lb-random",
            "callers pick an instance at random",
            {"service": _service(ALL_SERVICES, "balanced service", allow_all=True)},
            not_in=_LB_NOT_IN,
        ),
        Profile(
            "access-log",
            "every sidecar and the ingress write one log line per request",
            {
                "format": Param(
                    "http",
                    "http: HAProxy httplog; json: one JSON object per line",
                    kind="choice",
                    choices=("http", "json"),
                )
            },
        ),
        Profile(
            "traffic-split",
            "callers split a service's requests across its versions by weight (Gateway API HTTPRoute backendRefs)",
            {
                "service": Param(
                    "reviews", "the service split: the one with versions", kind="choice", choices=("reviews",)
                ),
                "weights": Param(
                    "80,10,10",
                    f"relative weight of each version, in order {','.join(_REVIEWS_VERSIONS)}",
                    kind="weights",
                    choices=_REVIEWS_VERSIONS,
                ),
            },
            not_in={INGRESS_ONLY: f"{_NO_SERVICE_PROXIES}, so none to split reviews' traffic"},
        ),
        Profile(
            "grpc-l4",
            "gRPC ratings through proxies that balance connections (TCP): one client connection, one replica",
            {"lb": _lb("how a connection picks a replica (least-request: fewest connections)")},
        ),
        Profile(
            "grpc-l7",
            "gRPC ratings through proxies that speak HTTP/2 and balance each request over the replicas",
            {"lb": _lb("how a request picks a replica")},
        ),
    )
}


def profile_named(name: str) -> Profile:
    profile = PROFILES.get(name)
    if profile is None:
        raise TestbedFailure(f"unknown testbed function {name!r}; choose one of {', '.join(PROFILES)}")
    return profile


def parse_settings(pairs: list[str]) -> dict[str, str]:
    """`["key=value", ...]` from the command line into a dict; a pair without `=` is refused."""
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TestbedFailure(f"--set {pair!r}: expected key=value, e.g. --set timeout_ms=250")
        settings[key.strip()] = value.strip()
    return settings
