"""The functions a mesh adapter renders, with the testbed's parameters (same names, same units, same
checks: `meshload.testbed.PROFILES` is the one definition), and BookInfo's shape in a cluster.

BookInfo in Kubernetes (`k8s/bookinfo/`) has the testbed's services, versions and calls: one Service
per application on port 9080, one Deployment `<service>-<version>` per version labelled `app` and
`version`, and per-version Services `reviews-v1` ... for weighted routing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import UsageError
from ...testbed import PROFILES, Profile, TestbedFailure
from ...testbed.profiles import ALL_SERVICES  # the testbed's package does not export these (yet)
from ...testbed.topology import INSTANCES, SERVICE_PORT, SERVICES

INGRESS = "ingress"  # the caller of productpage

NAMESPACE = "bookinfo"
PORT = SERVICE_PORT

# traffic-split (a Gateway API HTTPRoute in a cluster) is one of the testbed's profiles too: one definition.
MESH_PROFILES: dict[str, Profile] = dict(PROFILES)
FUNCTIONS: tuple[str, ...] = tuple(MESH_PROFILES)
# The functions the mesh modules render; any other testbed profile (`none`, and profiles for services
# k8s/bookinfo does not deploy) is answered "not supported" with its reason.
RENDERED: tuple[str, ...] = (
    "sidecar",
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
    "access-log",
    "traffic-split",
)


def versions(service: str) -> tuple[str, ...]:
    return tuple(instance.version for instance in INSTANCES if instance.service == service)


def callers(service: str) -> tuple[str, ...]:
    """The services that call `service` (productpage's caller is the ingress gateway)."""
    found = tuple(dict.fromkeys(i.service for i in INSTANCES if service in i.calls))
    return found or (INGRESS,)


def deployments() -> tuple[str, ...]:
    return tuple(instance.name for instance in INSTANCES)


@dataclass(frozen=True)
class FunctionCall:
    """A function with its parameters resolved against the testbed's definition."""

    name: str
    params: dict[str, str]

    def int(self, key: str) -> int:
        return int(self.params[key])

    def float(self, key: str) -> float:
        return float(self.params[key])

    @property
    def services(self) -> tuple[str, ...]:
        """The services the `service` parameter selects (all of them for `all`)."""
        chosen = self.params.get("service")
        if chosen is None:
            return ()
        return SERVICES if chosen == ALL_SERVICES else (chosen,)


def resolve(function: str, params: dict[str, str] | None) -> FunctionCall:
    """Defaults overridden by `params`, each checked as the testbed checks it; bad input is a UsageError."""
    profile = MESH_PROFILES.get(function)
    if profile is None:
        raise UsageError(f"unknown function {function!r}; choose one of {', '.join(FUNCTIONS)}")
    try:
        values = profile.resolve(params)
    except TestbedFailure as exc:
        raise UsageError(str(exc)) from exc
    if function == "traffic-split":
        split_weights(values)
    return FunctionCall(function, values)


def split_weights(params: dict[str, str]) -> dict[str, int]:
    """`weights=80,10,10` as {version: weight}; one whole, non-negative weight per version."""
    service = params["service"]
    names = versions(service)
    text = params["weights"]
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != len(names) or not all(part.isdigit() for part in parts):
        raise UsageError(
            f"traffic-split parameter weights={text!r}: expected {len(names)} whole numbers for "
            f"{', '.join(names)}, e.g. weights=80,10,10"
        )
    weights = dict(zip(names, (int(part) for part in parts), strict=True))
    if sum(weights.values()) == 0:
        raise UsageError(f"traffic-split parameter weights={text!r}: at least one weight must be above 0")
    return weights


def percentages(weights: dict[str, int]) -> dict[str, float]:
    """Relative weights as percentages with two decimals that add up to exactly 100 (largest
    remainder), for meshes that want percentages (Consul's ServiceSplitter)."""
    total = sum(weights.values())
    hundredths = {name: weight * 10000 / total for name, weight in weights.items()}
    floors = {name: int(value) for name, value in hundredths.items()}
    left = 10000 - sum(floors.values())
    by_remainder = sorted(hundredths, key=lambda name: hundredths[name] - floors[name], reverse=True)
    for name in by_remainder[:left]:
        floors[name] += 1
    return {name: value / 100 for name, value in floors.items()}


# HAProxy `retry-on` conditions (the testbed's `retry_on`) and what they mean in Envoy's `retry_on`
# (Istio's `retryOn`, Consul's `retryOn`). Bare status codes pass through as codes.
ENVOY_RETRY_ON = {
    "conn-failure": "connect-failure",
    "empty-response": "reset",
    "junk-response": "reset",
    "response-timeout": "reset",
    "0rtt-rejected": "reset",
    "all-retryable-errors": "5xx",
}


@dataclass(frozen=True)
class RetryConditions:
    """The testbed's retry conditions split into Envoy conditions, status codes and the unknown."""

    envoy: tuple[str, ...]
    status_codes: tuple[int, ...]
    unknown: tuple[str, ...]


def retry_conditions(retry_on: str) -> RetryConditions:
    envoy: list[str] = []
    codes: list[int] = []
    unknown: list[str] = []
    for condition in (part.strip() for part in retry_on.split(",")):
        if not condition:
            continue
        if condition.isdigit():
            codes.append(int(condition))
        elif condition in ENVOY_RETRY_ON:
            envoy.append(ENVOY_RETRY_ON[condition])
        else:
            unknown.append(condition)
    return RetryConditions(tuple(dict.fromkeys(envoy)), tuple(dict.fromkeys(codes)), tuple(unknown))


def milliseconds(value: str | int) -> str:
    """A duration in the form Istio, Linkerd, Consul and Gateway API all accept: `250ms`."""
    return f"{int(value)}ms"


def seconds(value: str | float) -> str:
    number = float(value)
    return f"{number:g}s" if number >= 1 or number == 0 else f"{round(number * 1000)}ms"
