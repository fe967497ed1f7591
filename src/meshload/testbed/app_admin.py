"""Talking to the BookInfo processes' admin routes (`/_testbed/...`) directly, never through a proxy."""

from __future__ import annotations

import http.client
import json

from .errors import TestbedFailure
from .httpclient import Upstream
from .topology import INGRESS_ONLY, Ports, host_header, instance_named, instances_of


def http_call(
    method: str, port: int, path: str, body: bytes | None = None, timeout_s: float = 2.0
) -> tuple[int, bytes]:
    """One request to 127.0.0.1:`port`; (status, body), or OSError."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request(method, path, body=body, headers={"content-type": "application/json"} if body else {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def upstreams_for(instance_name: str, ports: Ports, *, topology: str | None) -> dict[str, Upstream]:
    """Where an instance's calls go: its sidecar's or its node proxy's outbound port, or (no proxies
    between services: `topology` None for the `none` function, or ingress-only) the instances
    themselves."""
    instance = instance_named(instance_name)
    upstreams = {}
    for service in instance.calls:
        addresses: tuple[tuple[str, int], ...]
        if topology is not None and topology != INGRESS_ONLY:
            addresses = (("127.0.0.1", ports.outbound_of(topology, instance)),)
        else:
            addresses = tuple(("127.0.0.1", ports.instances[i.name].app) for i in instances_of(service))
        upstreams[service] = Upstream(host=host_header(service), addresses=addresses)
    return upstreams


def encode_upstreams(upstreams: dict[str, Upstream]) -> str:
    return json.dumps({service: upstream.to_json() for service, upstream in upstreams.items()})


def point_apps(ports: Ports, *, topology: str | None) -> None:
    """Repoint every calling instance at its proxy in `topology`, or straight at the instances it
    calls (see `upstreams_for`)."""
    for name, instance_ports in ports.instances.items():
        if not instance_named(name).calls:
            continue
        body = encode_upstreams(upstreams_for(name, ports, topology=topology)).encode()
        status, answer = http_call("PUT", instance_ports.app, "/_testbed/upstreams", body)
        if status != 200:
            raise TestbedFailure(f"{name} refused new upstreams: {answer[:200]!r}")


def set_mode(ports: Ports, service_or_instance: str, mode: str, fault_scale: float | None) -> None:
    """Set how every instance of a service (or one instance) behaves, e.g. ratings `faulty`."""
    if service_or_instance in ports.instances:
        names = [service_or_instance]
    else:
        names = [instance.name for instance in instances_of(service_or_instance)]
    if not names:
        services = dict.fromkeys(instance_named(name).service for name in ports.instances)
        known = ", ".join([*services, *ports.instances])
        raise TestbedFailure(f"no BookInfo service or instance named {service_or_instance!r}; choose one of {known}")
    payload = {"mode": mode} | ({"fault_scale": fault_scale} if fault_scale is not None else {})
    for name in names:
        status, answer = http_call("PUT", ports.instances[name].app, "/_testbed/mode", json.dumps(payload).encode())
        if status != 200:
            try:
                reason = json.loads(answer).get("error", "")
            except ValueError:
                reason = answer[:200].decode(errors="replace")
            raise TestbedFailure(f"{name}: {reason}")


def app_info(port: int) -> dict:
    """What an application says about itself (`GET /_testbed/info`): mode, upstreams, and for a
    gRPC ratings replica its calls by method. OSError or ValueError when it does not answer."""
    status, answer = http_call("GET", port, "/_testbed/info", timeout_s=2.0)
    if status != 200:
        raise ValueError(f"status {status}")
    info = json.loads(answer)
    if not isinstance(info, dict):
        raise ValueError("not a JSON object")
    return info
