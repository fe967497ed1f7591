"""BookInfo's shape on this machine: which instances run, what each one calls, where the proxies
stand (the topology), and the ports.

Every service instance gets an application port, a proxy inbound port (in front of the app) and a
proxy outbound port (the app's calls to other services go there, named by the Host header). The
gRPC ratings replicas also get a gRPC port; their application port serves only health and admin.

Three topologies place the proxies differently; every port is chosen once at `up`, so a switch
between them never moves an application:

    sidecar       one proxy per instance (Istio, Linkerd 2): `<instance>-sidecar`
    per-node      one shared proxy per node (Linkerd 1 as a DaemonSet): `<node>-proxy` binds the
                  inbound ports of the instances placed on its node, and one outbound port the
                  node's applications all call through
    ingress-only  only the gateway: services call each other directly
"""

from __future__ import annotations

from dataclasses import dataclass, field

SERVICE_PORT = 9080  # every BookInfo service's port in Kubernetes; kept in Host headers

SERVICES = ("productpage", "details", "reviews", "ratings")
GRPC_SERVICE = "ratings-grpc"  # BookInfo's ratings offered over gRPC too (ratings.v1.Ratings)
GRPC_REPLICAS = 3

SIDECAR = "sidecar"
PER_NODE = "per-node"
INGRESS_ONLY = "ingress-only"
TOPOLOGIES = (SIDECAR, PER_NODE, INGRESS_ONLY)
DEFAULT_TOPOLOGY = SIDECAR

NODES = ("node-a", "node-b")

INGRESS_NAME = "ingress-gateway"


@dataclass(frozen=True)
class Instance:
    """One deployment of one service version (one process), or one replica of the gRPC service."""

    service: str
    version: str
    node: str
    calls: tuple[str, ...] = ()
    replica: int = 0  # 1, 2, 3 for the gRPC replicas; 0 for BookInfo's one-instance versions

    @property
    def name(self) -> str:
        return f"{self.service}-{self.replica}" if self.replica else f"{self.service}-{self.version}"

    @property
    def grpc(self) -> bool:
        return self.service == GRPC_SERVICE


# BookInfo's instances (what k8s/bookinfo deploys too)
INSTANCES: tuple[Instance, ...] = (
    Instance("productpage", "v1", "node-a", calls=("details", "reviews", "ratings")),
    Instance("details", "v1", "node-a"),
    Instance("reviews", "v1", "node-a"),
    Instance("reviews", "v2", "node-b", calls=("ratings",)),
    Instance("reviews", "v3", "node-b", calls=("ratings",)),
    Instance("ratings", "v1", "node-b"),
)
GRPC_INSTANCES: tuple[Instance, ...] = tuple(
    Instance(GRPC_SERVICE, "v1", NODES[(n - 1) % len(NODES)], replica=n) for n in range(1, GRPC_REPLICAS + 1)
)
# every application process the testbed runs
ALL_INSTANCES: tuple[Instance, ...] = INSTANCES + GRPC_INSTANCES
# the services with several instances, whose requests a balancer spreads (`Testbed.served_by_replica`)
REPLICATED_SERVICES = ("reviews", GRPC_SERVICE)

# How a service may be told to behave (its own faults, not the mesh's): `failing` answers every
# request with 503 (UNAVAILABLE over gRPC); ratings also has the fault modes of its images.
SERVICE_MODES = ("normal", "failing")
RATINGS_MODES = (*SERVICE_MODES, "faulty", "delayed", "unavailable", "unhealthy")


def modes_of(service: str) -> tuple[str, ...]:
    return RATINGS_MODES if service == "ratings" else SERVICE_MODES


def instances_of(service: str) -> list[Instance]:
    return [instance for instance in ALL_INSTANCES if instance.service == service]


def instances_on(node: str) -> list[Instance]:
    return [instance for instance in ALL_INSTANCES if instance.node == node]


def instance_named(name: str) -> Instance:
    for instance in ALL_INSTANCES:
        if instance.name == name:
            return instance
    raise KeyError(name)


def host_header(service: str) -> str:
    return f"{service}:{SERVICE_PORT}"


def check_topology(topology: str) -> str:
    """`topology` if it is one; a ValueError naming the choices otherwise."""
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}; choose one of {', '.join(TOPOLOGIES)}")
    return topology


@dataclass(frozen=True)
class ProxyPlace:
    """One proxy process of a topology and the instances whose traffic it carries."""

    name: str
    kind: str  # "sidecar", "node-proxy" or "ingress"
    instances: tuple[Instance, ...] = ()
    node: str = ""

    @property
    def identity(self) -> str:
        """Whose certificate the proxy shows when it calls out: the service, the node, the gateway."""
        if self.kind == "sidecar":
            return self.instances[0].service
        return self.node or INGRESS_NAME

    @property
    def calls(self) -> tuple[str, ...]:
        """The services the proxied applications call, each once, in a stable order."""
        return tuple(dict.fromkeys(service for instance in self.instances for service in instance.calls))


INGRESS = ProxyPlace(INGRESS_NAME, "ingress")


def proxy_places(topology: str) -> list[ProxyPlace]:
    """The proxy processes a topology runs (the `none` function runs none of them)."""
    if topology == SIDECAR:
        return [ProxyPlace(f"{i.name}-sidecar", "sidecar", (i,)) for i in ALL_INSTANCES] + [INGRESS]
    if topology == PER_NODE:
        return [ProxyPlace(f"{n}-proxy", "node-proxy", tuple(instances_on(n)), node=n) for n in NODES] + [INGRESS]
    return [INGRESS]


def proxy_of(topology: str, instance_name: str) -> str | None:
    """The proxy in front of an instance, which also carries its calls, in `topology` (None: no proxy
    of its own, as in ingress-only)."""
    for place in proxy_places(topology):
        if place.kind != "ingress" and any(i.name == instance_name for i in place.instances):
            return place.name
    return None


@dataclass
class InstancePorts:
    app: int
    inbound: int
    outbound: int
    grpc: int = 0  # the gRPC replicas' gRPC port


@dataclass
class Ports:
    """Every port of the testbed, chosen once at `up` and kept for its whole life."""

    instances: dict[str, InstancePorts]
    ingress: int
    ingress_grpc: int = 0
    nodes: dict[str, int] = field(default_factory=dict)  # each node proxy's outbound port
    exporter: int = 0  # the metrics exporter's HTTP port (0: a testbed started before it had one)

    def outbound_of(self, topology: str, instance: Instance) -> int:
        """Where `instance` sends its calls in a proxied topology: its sidecar, or its node's proxy."""
        return self.nodes[instance.node] if topology == PER_NODE else self.instances[instance.name].outbound

    def to_json(self) -> dict:
        return {
            "ingress": self.ingress,
            "ingress_grpc": self.ingress_grpc,
            "nodes": dict(self.nodes),
            "exporter": self.exporter,
            "instances": {name: vars(ports) for name, ports in self.instances.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> Ports:
        return cls(
            instances={name: InstancePorts(**ports) for name, ports in data["instances"].items()},
            ingress=int(data["ingress"]),
            ingress_grpc=int(data.get("ingress_grpc", 0)),
            nodes={name: int(port) for name, port in data.get("nodes", {}).items()},
            exporter=int(data.get("exporter", 0)),
        )
