"""What a testbed's state says and its running processes report: health, the entry points
(ingress, gRPC, metrics), each process's ports, and the calls each replica has served.

Read-only: every function here takes the state a `Testbed` loaded (`state.py`) and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from . import app_admin, processes
from .errors import TestbedFailure
from .exporter import EXPORTER_KIND
from .processes import ProcessRecord
from .ratings_proto import RATINGS_PROTO, RATINGS_SERVICE
from .topology import (
    DEFAULT_TOPOLOGY,
    GRPC_SERVICE,
    REPLICATED_SERVICES,
    Ports,
    instances_of,
    proxy_places,
)


def records(state: dict) -> list[ProcessRecord]:
    return [ProcessRecord.from_json(record) for record in state.get("processes", [])]


def healthy(state: dict) -> bool:
    found = records(state)
    return bool(found) and all(processes.is_alive(record) for record in found)


def ingress_url(state: dict) -> str:
    ports = Ports.from_json(state["ports"])
    if state["function"] == "none":
        return f"http://127.0.0.1:{ports.instances['productpage-v1'].app}"
    return f"http://127.0.0.1:{ports.ingress}"


def grpc_address(state: dict) -> str:
    ports = Ports.from_json(state["ports"])
    if state["function"] == "none":  # no balancer at all: a client reaches one replica
        return f"127.0.0.1:{ports.instances[instances_of(GRPC_SERVICE)[0].name].grpc}"
    return f"127.0.0.1:{ports.ingress_grpc}"


def metrics_url(state: dict) -> str:
    """The exporter's endpoint (cAdvisor-named CPU and memory of every process); "" for a testbed
    started before it had one."""
    port = Ports.from_json(state["ports"]).exporter
    return f"http://127.0.0.1:{port}/metrics" if port else ""


def topology_of(state: dict) -> str:
    return state.get("topology", DEFAULT_TOPOLOGY)


def process_ports(record: ProcessRecord, ports: Ports, topology: str) -> dict[str, int]:
    """The ports a process listens on, for `status`."""
    if record.kind == "app":
        own = ports.instances[record.name]
        return {"http": own.app, **({"grpc": own.grpc} if own.grpc else {})}
    if record.kind == "ingress":
        return {"http": ports.ingress, "grpc": ports.ingress_grpc}
    if record.kind == EXPORTER_KIND:
        return {"metrics": ports.exporter}
    place = next((p for p in proxy_places(topology) if p.name == record.name), None)
    if place is None:  # a proxy of the topology before, finishing what it serves
        return {}
    if record.kind == "sidecar":
        own = ports.instances[place.instances[0].name]
        return {"inbound": own.inbound, **({"outbound": own.outbound} if place.calls else {})}
    listening = {f"inbound-{i.name}": ports.instances[i.name].inbound for i in place.instances}
    return {**listening, "outbound": ports.nodes[place.node]}


def grpc_calls(state: dict) -> dict[str, dict[str, int]]:
    """Calls each gRPC ratings replica has received since it started, by method (see
    `Testbed.grpc_calls`)."""
    ports = Ports.from_json(state["ports"])
    counts = {}
    for instance in instances_of(GRPC_SERVICE):
        try:
            info = app_admin.app_info(ports.instances[instance.name].app)
        except (OSError, ValueError) as exc:
            raise TestbedFailure(f"{instance.name} does not report its calls ({exc})") from exc
        counts[instance.name] = {method: int(n) for method, n in info.get("calls", {}).items()}
    return counts


def served_by_replica(state: dict) -> dict[str, dict[str, int]]:
    """Requests each instance of a service with several instances has answered since it started,
    by service (see `Testbed.served_by_replica`)."""
    ports = Ports.from_json(state["ports"])
    counts: dict[str, dict[str, int]] = {}
    for service in REPLICATED_SERVICES:
        for instance in instances_of(service):
            try:
                info = app_admin.app_info(ports.instances[instance.name].app)
            except (OSError, ValueError) as exc:
                raise TestbedFailure(f"{instance.name} does not report what it served ({exc})") from exc
            served = sum(int(n) for n in info.get("calls", {}).values()) if instance.grpc else info["served"]
            counts.setdefault(service, {})[instance.name] = int(served)
    return counts


def pids_by_kind(state: dict | None) -> dict[str, list[int]]:
    """Recorded pids by role (see `Testbed.pids_by_kind`)."""
    found: dict[str, list[int]] = {"app": [], "sidecar": [], "ingress": []}
    for record in records(state) if state else []:
        if record.kind == EXPORTER_KIND:
            continue  # meshload's own observer, not part of the mesh
        role = "sidecar" if record.kind == "node-proxy" else record.kind
        found.setdefault(role, []).append(record.pid)
    return found


def status_of(root: Path, state: dict | None) -> dict:
    """The `status` document of the testbed kept in `root` (see `Testbed.status`)."""
    if state is None:
        return {"state_dir": str(root), "running": False, "processes": []}
    ports = Ports.from_json(state["ports"])
    topology = topology_of(state)
    listing = [
        {
            "name": record.name,
            "kind": record.kind,
            "pid": record.pid,
            "alive": processes.is_alive(record),
            "ports": process_ports(record, ports, topology),
        }
        for record in records(state)
    ]
    replicas: dict[str, dict | None] = {}
    for instance in instances_of(GRPC_SERVICE):
        try:
            replicas[instance.name] = app_admin.app_info(ports.instances[instance.name].app).get("calls")
        except (OSError, ValueError):
            replicas[instance.name] = None  # not answering: its process shows as dead above
    return {
        "state_dir": str(root),
        "running": healthy(state),
        "function": state["function"],
        "params": state["params"],
        "topology": topology,
        "ingress_url": ingress_url(state),
        "metrics_url": metrics_url(state),
        "grpc": {
            "address": grpc_address(state),
            "service": RATINGS_SERVICE,
            "proto": str(RATINGS_PROTO),
            "calls": replicas,
        },
        "app_modes": state.get("app_modes", {}),
        "processes": listing,
    }
