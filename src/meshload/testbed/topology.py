"""BookInfo's shape on this machine: which instances run, what each one calls, and their ports.

Every service instance gets an application port, a sidecar inbound port (in front of the app) and a
sidecar outbound port (the app's calls to other services go there, named by the Host header).
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_PORT = 9080  # every BookInfo service's port in Kubernetes; kept in Host headers

SERVICES = ("productpage", "details", "reviews", "ratings")


@dataclass(frozen=True)
class Instance:
    """One deployment of one service version (one process plus one sidecar)."""

    service: str
    version: str
    calls: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.service}-{self.version}"


INSTANCES: tuple[Instance, ...] = (
    Instance("productpage", "v1", calls=("details", "reviews", "ratings")),
    Instance("details", "v1"),
    Instance("reviews", "v1"),
    Instance("reviews", "v2", calls=("ratings",)),
    Instance("reviews", "v3", calls=("ratings",)),
    Instance("ratings", "v1"),
)

INGRESS_NAME = "ingress-gateway"

# How a service may be told to behave (its own faults, not the mesh's): `failing` answers every
# request with 503; ratings also has the fault modes of its images (v-faulty, v-delayed, ...).
SERVICE_MODES = ("normal", "failing")
RATINGS_MODES = (*SERVICE_MODES, "faulty", "delayed", "unavailable", "unhealthy")


def modes_of(service: str) -> tuple[str, ...]:
    return RATINGS_MODES if service == "ratings" else SERVICE_MODES


def instances_of(service: str) -> list[Instance]:
    return [instance for instance in INSTANCES if instance.service == service]


def instance_named(name: str) -> Instance:
    for instance in INSTANCES:
        if instance.name == name:
            return instance
    raise KeyError(name)


def host_header(service: str) -> str:
    return f"{service}:{SERVICE_PORT}"


@dataclass
class InstancePorts:
    app: int
    inbound: int
    outbound: int


@dataclass
class Ports:
    """Every port of the testbed, chosen once at `up` and kept for its whole life."""

    instances: dict[str, InstancePorts]
    ingress: int

    def to_json(self) -> dict:
        return {
            "ingress": self.ingress,
            "instances": {name: vars(ports) for name, ports in self.instances.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> Ports:
        return cls(
            instances={name: InstancePorts(**ports) for name, ports in data["instances"].items()},
            ingress=int(data["ingress"]),
        )
